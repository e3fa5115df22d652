/**
 * Typed wrappers for the engine's side of the SQL API (migration
 * *_workflows_functions.sql). Every write carries the job's id and lease token:
 * the fence. "lease_lost" means this worker may record nothing more.
 */
import type { Sql } from "npm:postgres@3";

/** The fence of one invocation: the run and the job (id, lease token) driving it. */
export interface Fence {
  runId: number;
  jobId: number;
  token: string;
}

/** One recorded step, as `workflows.begin` returns it. */
export interface StepRow {
  name: string;
  seq: number;
  kind: "step" | "sleep" | "wait";
  status: "completed" | "retrying" | "failed" | "sleeping" | "waiting" | "timed_out";
  attempts: number;
  result: unknown;
  error: string | null;
  wakeAtMs: number | null;
  completedOrder: number | null;
  hasCompensation: boolean;
  compensationStatus: "compensated" | "retrying" | "compensation_failed" | null;
  compensationAttempts: number;
  compensationWakeAtMs: number | null;
}

/** A run as replay needs it. */
export interface RunState {
  state: "run";
  workflow: string;
  input: unknown;
  status: string;
  cancelRequested: boolean;
  traceparent: string | null;
  nowMs: number;
  steps: StepRow[];
  signals: { id: number; event: string; payload: unknown }[];
}

/** What `workflows.begin` answers. */
export type BeginResult = RunState | { state: "lease_lost" | "finished" };

/** Statuses a run can be moved to by the worker. */
export type AdvanceStatus =
  | "pending"
  | "sleeping"
  | "waiting"
  | "compensating"
  | "completed"
  | "failed"
  | "compensated"
  | "compensation_failed"
  | "cancelled";

/** Checks the fence, marks the run running and loads it. */
export async function beginRun(sql: Sql, f: Fence): Promise<BeginResult> {
  const [row] = await sql<{ r: BeginResult }[]>`
    select workflows.begin(${f.runId}, ${f.jobId}, ${f.token}::uuid) as r`;
  return row!.r;
}

/** One step write for {@link recordStep}. */
export interface StepWrite {
  name: string;
  seq: number;
  kind: StepRow["kind"];
  status: StepRow["status"];
  attempts: number;
  result?: unknown;
  error?: string | null;
  wakeAtMs?: number | null;
  hasCompensation?: boolean;
  signalId?: number | null;
  /** kind "wait": the event it waits for (what lets `workflows.signal` wake the run). */
  event?: string | null;
}

/** Records a step's state; "cancelled": recorded, but the run was cancelled meanwhile. */
export async function recordStep(
  sql: Sql,
  f: Fence,
  w: StepWrite,
): Promise<"ok" | "lease_lost" | "cancelled"> {
  const result = w.result == null ? null : sql.json(w.result as never);
  const [row] = await sql<{ r: "ok" | "lease_lost" | "cancelled" }[]>`
    select workflows.record_step(${f.runId}, ${f.jobId}, ${f.token}::uuid, ${w.name}, ${w.seq},
      ${w.kind}, ${w.status}, ${w.attempts}, ${result}::jsonb, ${w.error ?? null},
      ${w.wakeAtMs ?? null}::float8, ${w.hasCompensation ?? false}, ${w.signalId ?? null}::bigint,
      ${w.event ?? null}::text) as r`;
  return row!.r;
}

/** Records one compensation attempt. */
export async function recordCompensation(
  sql: Sql,
  f: Fence,
  name: string,
  status: "compensated" | "retrying" | "compensation_failed",
  attempts: number,
  error: string | null,
  wakeAtMs: number | null,
): Promise<"ok" | "lease_lost"> {
  const [row] = await sql<{ r: "ok" | "lease_lost" }[]>`
    select workflows.record_compensation(${f.runId}, ${f.jobId}, ${f.token}::uuid, ${name},
      ${status}, ${attempts}, ${error}, ${wakeAtMs}::float8) as r`;
  return row!.r;
}

/** Moves the run (terminal: ends it; otherwise hands its job back until `wakeAtMs`). */
export async function advanceRun(
  sql: Sql,
  f: Fence,
  status: AdvanceStatus,
  options: {
    output?: unknown;
    error?: string | null;
    wakeAtMs?: number | null;
    events?: string[];
  } = {},
): Promise<"ok" | "lease_lost"> {
  const output = options.output == null ? null : sql.json(options.output as never);
  const [row] = await sql<{ r: "ok" | "lease_lost" }[]>`
    select workflows.advance(${f.runId}, ${f.jobId}, ${f.token}::uuid, ${status},
      ${output}::jsonb, ${options.error ?? null}, ${options.wakeAtMs ?? null}::float8,
      ${options.events ?? null}::text[]) as r`;
  return row!.r;
}
