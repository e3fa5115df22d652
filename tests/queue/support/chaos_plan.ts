/**
 * What the chaos test and its worker processes agree on: the planned failures
 * and the queue positions where a worker is killed.
 */

/** Share of runs that fail. */
export const FAILURE_RATE = 0.2;

/** Runs a job gets before it is dead-lettered. */
export const MAX_ATTEMPTS = 4;

/** Lease a hold job keeps while its worker waits to be killed (ms). */
export const HOLD_LEASE_MS = 600_000;

/**
 * Whether run `attempt` of chaos job `n` fails. A hash, not Math.random(), so
 * the jobs that fail on every attempt (and so must end as dead letters) are
 * known before the run, whatever the machine or the timing.
 */
export function failsAt(n: number, attempt: number): boolean {
  let h = Math.imul(n + 1, 0x9e3779b1) ^ Math.imul(attempt + 1, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32 < FAILURE_RATE;
}
