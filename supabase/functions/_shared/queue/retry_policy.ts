/**
 * How many real tries a job gets and how long it waits between them. The
 * worker computes both per job; `queue.fail` applies them in SQL (the random
 * draw inside the delay window happens there, next to the row).
 */
import { type BackoffPolicy, JOB_DEFAULTS, type JobDefinition } from "./job.ts";

/**
 * The `max_attempts` a row gets when it is enqueued from SQL without the option
 * (supabase/migrations/*_queue_functions.sql). Keep in step with the migration.
 */
const SQL_DEFAULT_MAX_ATTEMPTS = 5;

/** The tries a claimed job gets before it is dead-lettered. */
export function effectiveMaxAttempts(rowMax: number, def: JobDefinition | undefined): number {
  // A row at the column default was most likely enqueued by SQL (a trigger, another
  // service) that never heard of the type's own limit: the type's limit is meant.
  // Any other value was chosen for this job and wins.
  if (def?.maxAttempts !== undefined && rowMax === SQL_DEFAULT_MAX_ATTEMPTS) return def.maxAttempts;
  return rowMax;
}

/** Bounds of the delay before the next try, after failed try `attempt` (1-based). */
export interface DelayWindow {
  minMs: number;
  maxMs: number;
}

/** The delay window after failed try `attempt` under `policy` (default: JOB_DEFAULTS.backoff). */
export function retryWindow(
  policy: BackoffPolicy = JOB_DEFAULTS.backoff,
  attempt: number,
): DelayWindow {
  const n = Math.max(1, Math.floor(attempt));
  if ("scheduleMs" in policy) {
    const s = policy.scheduleMs[Math.min(n, policy.scheduleMs.length) - 1] ?? 0;
    const jitter = policy.jitter ?? 0.1;
    return { minMs: s * (1 - jitter), maxMs: s * (1 + jitter) };
  }
  // 2^40 is far past any cap; the bound keeps the arithmetic finite.
  return { minMs: 0, maxMs: Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 40)) };
}

/**
 * Webhook retries, as Standard Webhooks recommends: 5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h, 10 h after the first try (8 tries, about 27.6 h, >= 24.8 h with jitter),
 * so a partner that is down for a day still gets its deliveries.
 */
export const WEBHOOK_RETRY_SCHEDULE_MS: readonly number[] = [
  5_000,
  300_000,
  1_800_000,
  7_200_000,
  18_000_000,
  36_000_000,
  36_000_000,
];
