/**
 * Job definitions: a type name, a zod schema for the payload, a handler and the
 * retry policy. The worker looks definitions up by type in a {@link JobRegistry}.
 *
 * @example
 * const sendEmail = defineJob({
 *   type: "email.send",
 *   schema: z.object({ to: z.email(), subject: z.string() }),
 *   timeoutMs: 10_000,
 *   handler: async ({ to, subject }, { signal }) => { await mailer.send(to, subject, { signal }); },
 * });
 */
import type { z } from "npm:zod@4";
import type { Logger } from "../core/log.ts";
import type { TraceContext } from "../core/trace.ts";

/**
 * How long a failed job waits before try n + 1. Either capped exponential
 * backoff with full jitter, delay = random() * min(maxMs, baseMs * 2^(n-1)), or a
 * fixed schedule (Standard Webhooks style): delay = scheduleMs[n-1] (the last
 * entry repeats) times a random factor in [1 - jitter, 1 + jitter] (default 0.1).
 */
export type BackoffPolicy =
  | { baseMs: number; maxMs: number }
  | { scheduleMs: readonly number[]; jitter?: number };

/** What a handler receives besides its payload. */
export interface JobContext {
  id: number;
  type: string;
  /** 1 on the first run. */
  attempt: number;
  maxAttempts: number;
  /** This attempt's fencing token: writes made under it fail once the lease is lost. */
  leaseToken: string;
  /** Aborted at `timeoutMs` (and when the worker must stop): pass it to fetch and friends. */
  signal: AbortSignal;
  /** Pushes this job's lease `ms` into the future; false if the lease was lost. */
  extendLease(ms: number): Promise<boolean>;
  /**
   * This run's span: the trace of whoever enqueued the job (`enqueue(..., { trace })`)
   * with a new span id, or a new trace. Pass it to `outboundFetch` and `enqueue`.
   */
  readonly trace: TraceContext;
  /** The worker's logger with jobId, jobType, attempt, traceId, spanId and parentSpanId. */
  readonly log: Logger;
}

/** A job type. Use {@link defineJob} for payload type inference. */
export interface JobDefinition<S extends z.ZodType = z.ZodType> {
  type: string;
  schema: S;
  handler(payload: z.output<S>, ctx: JobContext): Promise<unknown> | unknown;
  /**
   * Runs before dead-lettering (default 5, range 1..100). It wins over the SQL
   * column default (5) that rows enqueued from SQL without the option carry; a
   * per-job `maxAttempts` other than 5 given at enqueue wins over it.
   */
  maxAttempts?: number;
  /** Per-run limit; the handler's signal aborts then (default 30 s). */
  timeoutMs?: number;
  backoff?: BackoffPolicy;
  /** Queue this type is enqueued on by default (default `default`). */
  queue?: string;
}

/**
 * Defaults applied where a definition is silent. The backoff cap is the
 * ceiling of the last retry the default attempts allow (1 s, 2 s, 4 s, 8 s):
 * a larger cap would be documented but never reached.
 */
export const JOB_DEFAULTS = {
  maxAttempts: 5,
  timeoutMs: 30_000,
  backoff: { baseMs: 1_000, maxMs: 8_000 },
  queue: "default",
} as const;

/**
 * What a queue name may be: the SQL domain `queue.queue_name` checks the same
 * (migration *_queue_name_domain.sql).
 */
export const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Declares a job type with its payload type inferred from the schema. */
export function defineJob<S extends z.ZodType>(def: JobDefinition<S>): JobDefinition {
  if (!def.type || def.type.length > 200) throw new TypeError("job type must be 1..200 chars");
  if (def.timeoutMs !== undefined && !(def.timeoutMs > 0)) {
    throw new TypeError(`${def.type}: timeoutMs must be positive`);
  }
  const max = def.maxAttempts;
  if (max !== undefined && !(Number.isInteger(max) && max >= 1 && max <= 100)) {
    throw new TypeError(`${def.type}: maxAttempts must be an integer in 1..100`);
  }
  if (def.backoff !== undefined) checkBackoff(def.type, def.backoff);
  return def as unknown as JobDefinition;
}

/** Job definitions by type. */
export type JobRegistry = ReadonlyMap<string, JobDefinition>;

/** Builds a registry; a type defined twice is a programming error. */
export function jobRegistry(defs: readonly JobDefinition[]): JobRegistry {
  const map = new Map<string, JobDefinition>();
  for (const def of defs) {
    if (map.has(def.type)) throw new TypeError(`job type "${def.type}" is defined twice`);
    map.set(def.type, def);
  }
  return map;
}

function checkBackoff(type: string, b: BackoffPolicy): void {
  const ok = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n >= 0;
  const valid = "scheduleMs" in b
    ? b.scheduleMs.length > 0 && b.scheduleMs.every(ok) &&
      (b.jitter === undefined || (ok(b.jitter) && b.jitter <= 1))
    : ok(b.baseMs) && ok(b.maxMs);
  if (!valid) {
    throw new TypeError(
      `${type}: backoff needs finite, non-negative baseMs/maxMs or a non-empty scheduleMs (jitter 0..1)`,
    );
  }
}
