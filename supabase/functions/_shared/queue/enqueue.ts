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
import { JobPayloadError, QueueOptionsError } from "./errors.ts";
import { JOB_DEFAULTS, type JobDefinition } from "./job.ts";

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
}

/** Anything that can run a tagged query: the pool, a reserved connection or a transaction. */
export type Queryable = Pick<Sql, "unsafe">;

const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype;
}

/** One row for `queue.enqueue_many`, validated. */
export function jobRow(def: JobDefinition, payload: unknown, options: EnqueueOptions = {}) {
  if (!isPlainObject(payload)) throw new QueueOptionsError("payload must be a plain JSON object");
  const parsed = def.schema.safeParse(payload);
  if (!parsed.success) {
    throw new JobPayloadError(
      def.type,
      parsed.error.issues.map((i) => ({
        pointer: "/" + i.path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1"))
          .join("/"),
        detail: i.message,
      })),
    );
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
  if (options.delayMs !== undefined && !(options.delayMs >= 0)) {
    throw new QueueOptionsError("delayMs must be >= 0");
  }
  if (options.runAt !== undefined && Number.isNaN(options.runAt.getTime())) {
    throw new QueueOptionsError("runAt is not a valid date");
  }
  const runAt = options.runAt ??
    (options.delayMs ? new Date(Date.now() + options.delayMs) : undefined);
  return {
    job_type: def.type,
    payload,
    run_at: runAt?.toISOString() ?? null,
    priority,
    max_attempts: maxAttempts,
    dedupe_key: key ?? null,
    queue_name: queue,
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

/** Enqueues many jobs in one statement per 5,000; returns ids in input order. */
export async function enqueueMany(
  sql: Queryable,
  items: readonly EnqueueItem[],
): Promise<number[]> {
  const rows = items.map((it) => jobRow(it.job, it.payload, it.options));
  const ids: number[] = [];
  for (let i = 0; i < rows.length; i += 5000) {
    const chunk = JSON.stringify(rows.slice(i, i + 5000));
    const out = await sql.unsafe<{ id: string }[]>(
      "select id from queue.enqueue_many($1::text::jsonb)",
      [chunk],
    );
    for (const r of out) ids.push(Number(r.id));
  }
  return ids;
}
