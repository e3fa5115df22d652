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

/** Capped exponential backoff with full jitter: delay = random() * min(maxMs, baseMs * 2^(n-1)). */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** What a handler receives besides its payload. */
export interface JobContext {
  id: number;
  type: string;
  /** 1 on the first run. */
  attempt: number;
  maxAttempts: number;
  /** Aborted at `timeoutMs` (and when the worker must stop): pass it to fetch and friends. */
  signal: AbortSignal;
  /** Pushes this job's lease `ms` into the future; false if the lease was lost. */
  extendLease(ms: number): Promise<boolean>;
}

/** A job type. Use {@link defineJob} for payload type inference. */
export interface JobDefinition<S extends z.ZodType = z.ZodType> {
  type: string;
  schema: S;
  handler(payload: z.output<S>, ctx: JobContext): Promise<unknown> | unknown;
  /** Runs before dead-lettering (default 5, range 1..100). */
  maxAttempts?: number;
  /** Per-run limit; the handler's signal aborts then (default 30 s). */
  timeoutMs?: number;
  backoff?: BackoffPolicy;
  /** Queue this type is enqueued on by default (default `default`). */
  queue?: string;
}

/** Defaults applied where a definition is silent. */
export const JOB_DEFAULTS = {
  maxAttempts: 5,
  timeoutMs: 30_000,
  backoff: { baseMs: 1_000, maxMs: 3_600_000 },
  queue: "default",
} as const;

/** Declares a job type with its payload type inferred from the schema. */
export function defineJob<S extends z.ZodType>(def: JobDefinition<S>): JobDefinition {
  if (!def.type || def.type.length > 200) throw new TypeError("job type must be 1..200 chars");
  if (def.timeoutMs !== undefined && !(def.timeoutMs > 0)) {
    throw new TypeError(`${def.type}: timeoutMs must be positive`);
  }
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
