/**
 * The TypeScript face of the SQL API: start (input checked by the workflow's
 * schema first), signal, status, cancel, retry.
 *
 * @example
 * const runId = await startWorkflow(sql, orderCheckout, { sku: "tee", quantity: 1 }, {
 *   idempotencyKey: `order:${orderId}`,
 * });
 * await signalWorkflow(sql, runId, "payment.confirmed", { chargeId });
 */
import type { Sql, TransactionSql } from "npm:postgres@3";
import { fieldErrors } from "../core/json_pointer.ts";
import type { WorkflowDefinition } from "./definition.ts";
import { WorkflowInputError } from "./errors.ts";

type Queryable = Sql | TransactionSql;

/** Options of {@link startWorkflow}. */
export interface StartOptions {
  /** A second start with the same key returns the first run's id. */
  idempotencyKey?: string;
  /** The user the run belongs to (the api reads only its caller's runs). */
  ownerId?: string;
  /** The starting request's W3C traceparent; every step's log lines carry it. */
  traceparent?: string;
}

/** A run as `workflows.status` reports it. */
export interface WorkflowStatus {
  id: number;
  workflow: string;
  status: string;
  output?: unknown;
  error?: string;
  steps: {
    name: string;
    kind: string;
    status: string;
    attempts: number;
    error?: string;
    /** Set once its compensation ran or was tried: compensated, retrying, compensation_failed. */
    compensation?: string;
    compensationAttempts?: number;
    compensationError?: string;
  }[];
}

/** Validates `input` with the workflow's schema and starts a run; returns its id. */
export async function startWorkflow<I>(
  sql: Queryable,
  def: Pick<WorkflowDefinition, "name" | "input">,
  input: I,
  options: StartOptions = {},
): Promise<number> {
  const parsed = def.input.safeParse(input);
  if (!parsed.success) throw new WorkflowInputError(def.name, fieldErrors(parsed.error.issues, ""));
  const [row] = await sql<{ id: string }[]>`
    select workflows.start(${def.name}, ${sql.json(input as never)}::jsonb,
      ${options.idempotencyKey ?? null}, ${options.ownerId ?? null}::uuid,
      ${options.traceparent ?? null}) as id`;
  return Number(row!.id);
}

/** Sends `event` to a run; false for an unknown or finished run. A signal before the wait is kept. */
export async function signalWorkflow(
  sql: Queryable,
  runId: number,
  event: string,
  payload: unknown = {},
): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`
    select workflows.signal(${runId}, ${event}, ${sql.json(payload as never)}::jsonb) as ok`;
  return row!.ok;
}

/** The run's status and steps, or null for an unknown run. */
export async function workflowStatus(
  sql: Queryable,
  runId: number,
): Promise<WorkflowStatus | null> {
  const [row] = await sql<{ s: WorkflowStatus | null }[]>`select workflows.status(${runId}) as s`;
  return row!.s;
}

/** Cancels an unfinished run: its compensations run and it ends `cancelled`. */
export async function cancelWorkflow(sql: Queryable, runId: number): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`select workflows.cancel(${runId}) as ok`;
  return row!.ok;
}

/** Resumes a `failed` or `compensation_failed` run. */
export async function retryWorkflow(sql: Queryable, runId: number): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`select workflows.retry(${runId}) as ok`;
  return row!.ok;
}
