/**
 * Enqueueing from TypeScript: the payload is checked against its job's schema
 * and the options against their ranges BEFORE anything reaches SQL, so a bad
 * job is refused at the caller instead of dead-lettered later.
 *
 * @example
 * const id = await enqueue(sql, sendEmail, { to: "a@example.com", subject: "Hi" }, {
 *   dedupeKey: "welcome:42", delayMs: 60_000,
 * });
 */
import type { Sql } from "npm:postgres@3";
import type { z } from "npm:zod@4";
import { fieldErrors } from "../core/json_pointer.ts";
import { type TraceContext, traceparentOf } from "../core/trace.ts";
import { JobPayloadError, PayloadTooLargeError, QueueOptionsError } from "./errors.ts";
import { JOB_DEFAULTS, type JobDefinition, QUEUE_NAME } from "./job.ts";

/** Per-job options; the job definition supplies defaults for maxAttempts and queue. */
export interface EnqueueOptions {
  /** Run no earlier than this instant. */
  runAt?: Date;
  /** Run no earlier than `delayMs` from now (ignored when runAt is given). */
  delayMs?: number;
  /** -100..100, higher runs first (default 0). */
  priority?: number;
  maxAttempts?: number;
  /** While a job with this key is live in the queue, enqueueing again returns its id. */
  dedupeKey?: string;
  queue?: string;
  /**
   * The span that enqueues (`ctx.trace` in a handler or job): stored with the job,
   * so its runs log under the same trace id with their own span ids.
   */
  trace?: TraceContext;
}

/** Anything that can run a tagged query: the pool, a reserved connection or a transaction. */
export type Queryable = Pick<Sql, "unsafe">;

/** `queue.max_payload_bytes()`: the most JSON (UTF-8 octets, as Postgres prints it) a payload may be. */
export const MAX_PAYLOAD_BYTES = 1_048_576;

/** The run_at range SQL accepts: years 1..9999 UTC (Postgres and JavaScript both print these). */
const MIN_RUN_AT_MS = Date.parse("0001-01-01T00:00:00Z");
const END_RUN_AT_MS = Date.UTC(10000, 0, 1);

/** A batch statement stops growing here, far below Postgres' 256 MB jsonb and 1 GB text limits. */
const STATEMENT_BYTES = 16 * 1024 * 1024;

const utf8 = new TextEncoder();

/** UTF-8 length of `json`, computed only when its UTF-16 length cannot settle the question. */
function overLimit(json: string): number | null {
  if (json.length * 3 <= MAX_PAYLOAD_BYTES) return null;
  const bytes = json.length > MAX_PAYLOAD_BYTES ? json.length : utf8.encode(json).length;
  return bytes > MAX_PAYLOAD_BYTES ? bytes : null;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}

/** One row for `queue.enqueue_many`, validated. */
export function jobRow(def: JobDefinition, payload: unknown, options: EnqueueOptions = {}) {
  const { row } = checkedRow(def, payload, options);
  return row;
}

/** What `queue.enqueue_many` stores for a key an element leaves out. */
const SQL_DEFAULTS = { priority: 0, maxAttempts: 5, queue: "default" } as const;

/**
 * The row as `enqueue_many` JSON. The payload's JSON, printed once for the size
 * check, is spliced in rather than printed a second time with the row, and keys
 * holding what SQL would store anyway are left out: every byte is parsed as JSON
 * and looked up again in Postgres, per row.
 */
function jobRowJson(def: JobDefinition, payload: unknown, options: EnqueueOptions = {}): string {
  const { row, payloadJson } = checkedRow(def, payload, options);
  let json = `{"payload":${payloadJson},"job_type":${JSON.stringify(row.job_type)}`;
  if (row.run_at !== null) json += `,"run_at":"${row.run_at}"`;
  if (row.priority !== SQL_DEFAULTS.priority) json += `,"priority":${row.priority}`;
  if (row.max_attempts !== SQL_DEFAULTS.maxAttempts) json += `,"max_attempts":${row.max_attempts}`;
  if (row.dedupe_key !== null) json += `,"dedupe_key":${JSON.stringify(row.dedupe_key)}`;
  if (row.queue_name !== SQL_DEFAULTS.queue) {
    json += `,"queue_name":${JSON.stringify(row.queue_name)}`;
  }
  if ("traceparent" in row) {
    json += `,"traceparent":${JSON.stringify(row.traceparent)}`;
    if (row.tracestate !== null) json += `,"tracestate":${JSON.stringify(row.tracestate)}`;
  }
  return json + "}";
}

function checkedRow(def: JobDefinition, payload: unknown, options: EnqueueOptions) {
  if (!isPlainObject(payload)) throw new QueueOptionsError("payload must be a plain JSON object");
  const parsed = def.schema.safeParse(payload);
  if (!parsed.success) {
    throw new JobPayloadError(def.type, fieldErrors(parsed.error.issues, ""));
  }
  const priority = options.priority ?? 0;
  if (!Number.isInteger(priority) || priority < -100 || priority > 100) {
    throw new QueueOptionsError(`priority must be an integer in -100..100, got ${priority}`);
  }
  const maxAttempts = options.maxAttempts ?? def.maxAttempts ?? JOB_DEFAULTS.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new QueueOptionsError(`maxAttempts must be an integer in 1..100, got ${maxAttempts}`);
  }
  const queue = options.queue ?? def.queue ?? JOB_DEFAULTS.queue;
  if (!QUEUE_NAME.test(queue)) throw new QueueOptionsError(`invalid queue name "${queue}"`);
  const key = options.dedupeKey;
  if (key !== undefined && (key.length < 1 || key.length > 200)) {
    throw new QueueOptionsError("dedupeKey must be 1..200 characters");
  }
  if (
    options.delayMs !== undefined && !(Number.isFinite(options.delayMs) && options.delayMs >= 0)
  ) {
    throw new QueueOptionsError(`delayMs must be a finite number >= 0, got ${options.delayMs}`);
  }
  if (options.runAt !== undefined && !(options.runAt instanceof Date)) {
    throw new QueueOptionsError("runAt must be a Date");
  }
  const runAt = options.runAt ??
    (options.delayMs ? new Date(Date.now() + options.delayMs) : undefined);
  if (runAt !== undefined) {
    const t = runAt.getTime();
    if (!(t >= MIN_RUN_AT_MS && t < END_RUN_AT_MS)) {
      throw new QueueOptionsError("runAt must be a valid date in years 1..9999 (UTC)");
    }
  }
  // JSON.stringify never prints more than Postgres does (it adds no spaces), so a
  // payload over the limit here is over it in SQL too; a few near the limit are
  // caught only there, and enqueueMany maps that error to the same type.
  const payloadJson = JSON.stringify(payload);
  const bytes = overLimit(payloadJson);
  if (bytes !== null) throw new PayloadTooLargeError(bytes, MAX_PAYLOAD_BYTES);
  const row = {
    job_type: def.type,
    payload,
    run_at: runAt?.toISOString() ?? null,
    priority,
    max_attempts: maxAttempts,
    dedupe_key: key ?? null,
    queue_name: queue,
  };
  // Only traced jobs carry the keys: an untraced batch stays as small as before.
  const trace = options.trace;
  if (trace === undefined) return { row, payloadJson };
  return {
    row: { ...row, traceparent: traceparentOf(trace), tracestate: trace.tracestate ?? null },
    payloadJson,
  };
}

/** Enqueues one job; returns its id (or the live duplicate's id with a dedupeKey). */
export async function enqueue<S extends z.ZodType>(
  sql: Queryable,
  def: JobDefinition<S>,
  payload: z.input<S>,
  options: EnqueueOptions = {},
): Promise<number> {
  const [id] = await enqueueMany(sql, [{ job: def as JobDefinition, payload, options }]);
  return id!;
}

/** One element of {@link enqueueMany}. */
export interface EnqueueItem {
  job: JobDefinition;
  payload: unknown;
  options?: EnqueueOptions;
}

/** Batching limits of {@link enqueueMany}. */
export interface EnqueueManyOptions {
  /** Largest JSON text of one statement (default 16 MiB); a single job may exceed it. */
  statementBytes?: number;
  /**
   * Statements in flight at once (default 1). More (on a pool, each on its own
   * connection) is faster, but ids and run order follow input order only within
   * each statement of 5,000 jobs, no longer across them.
   */
  statementsInFlight?: number;
}

/**
 * Statements of one {@link enqueueMany} call in flight at once by default: one, so
 * ids (and hence the run order of equal priority and run_at) follow input order
 * across statements too.
 */
const STATEMENTS_IN_FLIGHT = 1;

/**
 * Enqueues many jobs, one statement per 5,000 jobs or 16 MiB of JSON (one at a
 * time unless `statementsInFlight` says otherwise); returns ids in input order, and
 * (one at a time) ids increase in input order. Statements commit one by one
 * unless `sql` is a transaction: after an error, any of them may have committed
 * (pass a transaction for all or nothing).
 */
export async function enqueueMany(
  sql: Queryable,
  items: readonly EnqueueItem[],
  options: EnqueueManyOptions = {},
): Promise<number[]> {
  const limit = options.statementBytes ?? STATEMENT_BYTES;
  const inFlight = options.statementsInFlight ?? STATEMENTS_IN_FLIGHT;
  if (!Number.isInteger(inFlight) || inFlight < 1) {
    throw new QueueOptionsError(`statementsInFlight must be an integer >= 1, got ${inFlight}`);
  }
  const rows = items.map((it) => jobRowJson(it.job, it.payload, it.options));
  const chunks: string[] = [];
  let start = 0;
  while (start < rows.length) {
    // UTF-16 length: a close enough, cheap estimate of the statement's size.
    let end = start + 1;
    let size = rows[start]!.length;
    while (end < rows.length && end - start < 5000 && size + rows[end]!.length < limit) {
      size += rows[end]!.length + 1;
      end++;
    }
    chunks.push("[" + rows.slice(start, end).join(",") + "]");
    start = end;
  }
  const results: number[][] = new Array(chunks.length);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < chunks.length) {
      const i = next++;
      const out = await sql.unsafe<{ id: string }[]>(
        "select id from queue.enqueue_many($1::text::jsonb)",
        [chunks[i]!],
      ).catch((error: unknown) => {
        failed = true;
        throw (error as { code?: string }).code === "54000"
          ? new PayloadTooLargeError(null, MAX_PAYLOAD_BYTES, error)
          : error;
      });
      results[i] = out.map((r) => Number(r.id));
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, chunks.length) }, lane));
  return results.flat();
}
