/**
 * The worker loop: claims batches, runs handlers with bounded concurrency and a
 * per-job timeout, and acknowledges finished jobs in the same round trip as the
 * next claim (failures go in one `queue.fail` call per loop turn).
 *
 * Budget: it stops claiming once a freshly claimed job might not finish before
 * `budgetMs` runs out, never starts a job that could not, and hands unstarted
 * jobs back with `queue.release`. `mode: "drain"` returns when the queue is
 * empty; `mode: "listen"` waits for NOTIFY (or polls) until `signal` aborts.
 *
 * @example
 * const summary = await runWorker({ sql, registry, budgetMs: 50_000 });
 */
import type { Sql } from "npm:postgres@3";
import type { JobRegistry } from "./job.ts";
import { JOB_DEFAULTS } from "./job.ts";
import {
  ackAndClaim,
  completeJobs,
  extendLease,
  type FailedJob,
  failJobs,
  releaseJobs,
} from "./queue_sql.ts";
import { type ClaimedJob, type JobOutcome, runJob, timeoutOf } from "./run_job.ts";

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  sql: Sql;
  registry: JobRegistry;
  queue?: string;
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /** Jobs claimed per round trip (default 2 x concurrency). */
  batchSize?: number;
  /** Lease per claim; default covers a full batch at the longest timeout, plus 10 s. */
  leaseMs?: number;
  /** Wall-clock budget (default: none). */
  budgetMs?: number;
  /** Stop claiming after this many jobs. */
  maxJobs?: number;
  mode?: "drain" | "listen";
  /** Listen mode: poll this often even without NOTIFY (scheduled jobs, retries). */
  pollMs?: number;
  signal?: AbortSignal;
  workerId?: string;
  now?: () => number;
}

/** What a run did. */
export interface WorkerSummary {
  claimed: number;
  completed: number;
  retried: number;
  deadLettered: number;
  released: number;
  durationMs: number;
}

/** Runs the loop until the queue is empty (drain), or the budget, maxJobs or signal end it. */
export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const now = o.now ?? Date.now;
  const started = now();
  const queue = o.queue ?? JOB_DEFAULTS.queue;
  const concurrency = Math.max(1, o.concurrency ?? 10);
  const batch = Math.max(1, o.batchSize ?? concurrency * 2);
  const timeouts = [...o.registry.values()].map(timeoutOf);
  const maxTimeout = timeouts.length ? Math.max(...timeouts) : timeoutOf(undefined);
  // Up to two batches are held: the next claim (with the previous acks) is in
  // flight while the current batch runs, so the database and handlers overlap.
  const capacity = batch * 2;
  const leaseMs = o.leaseMs ?? maxTimeout * Math.ceil(capacity / concurrency) + 10_000;
  const deadline = started + (o.budgetMs ?? Infinity);
  const pollMs = o.pollMs ?? 1000;
  const mode = o.mode ?? "drain";
  const workerId = o.workerId ?? `w-${crypto.randomUUID().slice(0, 8)}`;
  const stop = new AbortController();
  const onAbort = () => {
    stop.abort(o.signal?.reason);
    wakeUp();
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });

  const s: WorkerSummary = {
    claimed: 0,
    completed: 0,
    retried: 0,
    deadLettered: 0,
    released: 0,
    durationMs: 0,
  };
  let acks = { ids: [] as number[], tokens: [] as string[] };
  let ackSince = 0;
  let fails: FailedJob[] = [];
  let unstarted: ClaimedJob[] = [];
  const local: ClaimedJob[] = [];
  let running = 0;
  let idleUntil = 0;
  let lastReclaim = -Infinity;
  let wake: (() => void) | null = null;
  function wakeUp() {
    const w = wake;
    wake = null;
    w?.();
  }
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wake = null;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  function record(job: ClaimedJob, outcome: JobOutcome) {
    if (outcome.kind === "done") {
      if (acks.ids.length === 0) ackSince = now();
      acks.ids.push(job.id);
      acks.tokens.push(job.lease_token);
      return;
    }
    const def = o.registry.get(job.job_type);
    const backoff = def?.backoff ?? JOB_DEFAULTS.backoff;
    // The definition's maxAttempts wins over the row's, which SQL-side producers
    // (triggers, other services) leave at the table default.
    const spent = def?.maxAttempts !== undefined && job.attempts >= def.maxAttempts;
    const retry = outcome.kind === "retry" && !spent;
    fails.push({
      id: job.id,
      token: job.lease_token,
      error: outcome.error,
      retryable: retry,
      reason: outcome.kind === "dead" ? outcome.reason : retry ? null : "attempts_exhausted",
      backoffBaseMs: backoff.baseMs,
      backoffMaxMs: backoff.maxMs,
    });
  }

  function startJobs() {
    while (running < concurrency && local.length > 0) {
      const job = local.shift()!;
      if (stop.signal.aborted || now() + timeoutOf(o.registry.get(job.job_type)) > deadline) {
        unstarted.push(job);
        continue;
      }
      running++;
      runJob(job, o.registry, {
        stop: stop.signal,
        extendLease: (ms) => extendLease(o.sql, job.id, job.lease_token, ms),
      }).then((outcome) => {
        record(job, outcome);
        running--;
        startJobs();
        // Wake the loop only when it has something to do: room for the next
        // claim, or nothing left running (a wake per job costs a timer each).
        const held = local.length + running;
        if (held <= capacity - batch || running === 0 || fails.length > 0) wakeUp();
      });
    }
  }

  const listener = mode === "listen"
    ? await o.sql.listen("queue_jobs", (name) => {
      if (name === queue) {
        idleUntil = 0;
        wakeUp();
      }
    })
    : null;

  try {
    while (true) {
      if (fails.length > 0) {
        const batchFails = fails;
        fails = [];
        const counts = await failJobs(o.sql, batchFails);
        s.retried += counts.retried;
        s.deadLettered += counts.deadLettered;
      }
      if (unstarted.length > 0) {
        const give = unstarted;
        unstarted = [];
        s.released += await releaseJobs(o.sql, {
          ids: give.map((j) => j.id),
          tokens: give.map((j) => j.lease_token),
        });
      }
      const held = local.length + running;
      const mayClaim = !stop.signal.aborted && now() + maxTimeout < deadline &&
        (o.maxJobs === undefined || s.claimed < o.maxJobs);
      if (!mayClaim && held === 0 && fails.length === 0) break;
      const claimNow = mayClaim && held <= capacity - batch &&
        (now() >= idleUntil || (mode === "drain" && held === 0));
      if (claimNow) {
        const want = Math.min(batch, capacity - held, (o.maxJobs ?? Infinity) - s.claimed);
        const done = acks;
        acks = { ids: [], tokens: [] };
        // Sweeping expired leases costs a statement; once a second is soon enough.
        const reclaim = now() - lastReclaim >= 1000;
        if (reclaim) lastReclaim = now();
        const got = await ackAndClaim(o.sql, done, queue, want, leaseMs / 1000, workerId, reclaim);
        s.completed += got.acked;
        s.claimed += got.jobs.length;
        if (got.jobs.length > 0) {
          local.push(...got.jobs);
          startJobs();
          continue;
        }
        // Outcomes that arrived during the claim are flushed first (next turn). `held`
        // is re-read: jobs may have finished while the claim was in flight, and a
        // drain with nothing left must end now, not after a poll interval.
        if (local.length + running === 0 && mode === "drain" && fails.length === 0) break;
        idleUntil = now() + pollMs;
      }
      const idle = running === 0 && local.length === 0;
      if (acks.ids.length > 0 && (idle || acks.ids.length >= batch || now() - ackSince > 500)) {
        const done = acks;
        acks = { ids: [], tokens: [] };
        s.completed += await completeJobs(o.sql, done);
      }
      if (fails.length > 0 || (stop.signal.aborted && running + local.length === 0)) continue;
      await sleep(idle ? Math.max(1, Math.min(idleUntil - now(), deadline - now())) : 1000);
    }
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    if (listener) await listener.unlisten().catch(() => {});
  }
  // Leftovers: acks and failures of the last jobs, anything claimed but never started.
  s.completed += await completeJobs(o.sql, acks);
  const last = await failJobs(o.sql, fails);
  s.retried += last.retried;
  s.deadLettered += last.deadLettered;
  unstarted.push(...local.splice(0));
  s.released += await releaseJobs(o.sql, {
    ids: unstarted.map((j) => j.id),
    tokens: unstarted.map((j) => j.lease_token),
  });
  s.durationMs = now() - started;
  return s;
}
