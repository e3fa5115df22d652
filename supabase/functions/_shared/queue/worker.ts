/**
 * The worker loop: claims batches, runs handlers with bounded concurrency and a
 * per-job timeout, and acknowledges finished jobs in the same round trip as the
 * next claim (failures go in one `queue.fail` call per loop turn).
 *
 * Budget: a little of `budgetMs` is kept back for the last acknowledgements
 * (see {@link budgetReserveMs}); until then it claims and starts jobs, each with
 * its own timeout capped by the time left. A job the budget cuts off, and any
 * job it could not start, goes back with `queue.release` without spending an
 * attempt, so any budget makes progress whatever the jobs' timeouts. The
 * summary says why claiming stopped and why claimed jobs were not started.
 * `mode: "drain"` returns when the queue is empty; `mode: "listen"` waits for
 * NOTIFY (or polls) until `signal` aborts.
 *
 * @example
 * const summary = await runWorker({ sql, registry, budgetMs: 50_000 });
 */
import type { Sql } from "npm:postgres@3";
import { createLogger, type Logger } from "../core/log.ts";
import type { JobRegistry } from "./job.ts";
import { JOB_DEFAULTS } from "./job.ts";
import { ackAndClaim, completeJobs, extendLease, type FailedJob, failJobs } from "./sql.ts";
import { effectiveMaxAttempts, retryWindow } from "./retry_policy.ts";
import {
  type ClaimedJob,
  describeError,
  type HandBackReason,
  type JobOutcome,
  runJob,
  timeoutOf,
} from "./run_job.ts";
import { type HandBack, handBackJobs, logFailures } from "./worker_report.ts";

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
  /** Retries, dead letters and hand-backs are logged here, one line per job (default: console). */
  log?: Logger;
}

/** Why a worker stopped claiming: the drain found nothing runnable, or it had to stop. */
export type StopReason = "empty" | HandBackReason | "maxJobs";

/** What a run did. */
export interface WorkerSummary {
  claimed: number;
  completed: number;
  retried: number;
  deadLettered: number;
  /** Not tried (e.g. an open circuit breaker): back later, no attempt spent. */
  deferred: number;
  /** Handed back at once without spending an attempt (not started, or cut off). */
  released: number;
  /** Claimed jobs handed back before they started, by reason. */
  notStarted: Record<HandBackReason, number>;
  /** Started jobs the budget cut off or the shutdown aborted, by reason. */
  cutOff: Record<HandBackReason, number>;
  /** Why claiming stopped; anything but "empty" may leave runnable jobs behind. */
  stoppedBy: StopReason;
  durationMs: number;
}

/**
 * Time kept back at the end of a budget for the last acknowledgements and the
 * reply: a tenth of it, within 100 ms .. 2 s.
 */
export function budgetReserveMs(budgetMs: number): number {
  return Math.min(2_000, Math.max(100, budgetMs / 10));
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
  const reserveMs = o.budgetMs === undefined ? 0 : budgetReserveMs(o.budgetMs);
  // Handlers must have ended by then; a claim or a start needs a reserve's worth left.
  const jobsEnd = deadline - reserveMs;
  const log = o.log ?? createLogger("info", { component: "queue-worker" });
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
    deferred: 0,
    released: 0,
    notStarted: { budget: 0, shutdown: 0 },
    cutOff: { budget: 0, shutdown: 0 },
    stoppedBy: "empty",
    durationMs: 0,
  };
  let acks = { ids: [] as number[], tokens: [] as string[] };
  let ackSince = 0;
  let fails: (FailedJob & { job: ClaimedJob })[] = [];
  let handBack: HandBack[] = [];
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
    switch (outcome.kind) {
      case "done":
        if (acks.ids.length === 0) ackSince = now();
        acks.ids.push(job.id);
        acks.tokens.push(job.lease_token);
        return;
      case "retry":
      case "dead": {
        const def = o.registry.get(job.job_type);
        const window = retryWindow(def?.backoff, job.attempts);
        fails.push({
          job,
          id: job.id,
          token: job.lease_token,
          error: outcome.error,
          retryable: outcome.kind === "retry",
          reason: outcome.kind === "dead" ? outcome.reason : null,
          maxAttempts: effectiveMaxAttempts(job.max_attempts, def),
          delayMinMs: window.minMs,
          delayMaxMs: window.maxMs,
        });
        return;
      }
      case "defer":
        handBack.push({ job, why: "deferred", delayMs: outcome.delayMs, error: outcome.error });
        return;
      case "release":
        s.cutOff[outcome.reason]++;
        handBack.push({ job, why: outcome.reason, delayMs: 0, error: outcome.error });
        return;
      default: {
        const never: never = outcome;
        throw new TypeError(`unknown job outcome ${JSON.stringify(never)}`);
      }
    }
  }

  function notStart(job: ClaimedJob, why: HandBackReason) {
    s.notStarted[why]++;
    handBack.push({ job, why, delayMs: 0, error: null });
  }

  function startJobs() {
    while (running < concurrency && local.length > 0) {
      const job = local.shift()!;
      if (stop.signal.aborted) {
        notStart(job, "shutdown");
        continue;
      }
      const left = jobsEnd - now();
      if (left < reserveMs) {
        notStart(job, "budget");
        continue;
      }
      running++;
      const finish = (outcome: JobOutcome) => {
        record(job, outcome);
        running--;
        startJobs();
        // Wake the loop only when it has something to do: room for the next
        // claim, or nothing left running (a wake per job costs a timer each).
        const held = local.length + running;
        if (
          held <= capacity - batch || running === 0 || fails.length > 0 || handBack.length > 0
        ) wakeUp();
      };
      runJob(job, o.registry, {
        stop: stop.signal,
        extendLease: (ms) => extendLease(o.sql, job.id, job.lease_token, ms),
        budgetMs: Number.isFinite(left) ? left : undefined,
      }).then(finish, (error) => finish({ kind: "retry", error: describeError(error) }));
    }
  }

  async function flush() {
    if (fails.length > 0) {
      const batchFails = fails;
      fails = [];
      const results = await failJobs(o.sql, batchFails);
      for (const r of results) {
        if (r.outcome === "dead_lettered") s.deadLettered++;
        else s.retried++;
      }
      logFailures(log, batchFails, results);
    }
    if (handBack.length > 0) {
      const give = handBack;
      handBack = [];
      const n = await handBackJobs(o.sql, log, give);
      s.released += n.released;
      s.deferred += n.deferred;
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
      await flush();
      const held = local.length + running;
      const stopNow: StopReason | null = stop.signal.aborted
        ? "shutdown"
        : jobsEnd - now() < reserveMs
        ? "budget"
        : o.maxJobs !== undefined && s.claimed >= o.maxJobs
        ? "maxJobs"
        : null;
      const mayClaim = stopNow === null;
      if (stopNow !== null && s.stoppedBy === "empty") s.stoppedBy = stopNow;
      if (!mayClaim && held === 0 && fails.length === 0 && handBack.length === 0) break;
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
        if (
          local.length + running === 0 && mode === "drain" && fails.length === 0 &&
          handBack.length === 0
        ) break;
        idleUntil = now() + pollMs;
      }
      const idle = running === 0 && local.length === 0;
      if (acks.ids.length > 0 && (idle || acks.ids.length >= batch || now() - ackSince > 500)) {
        const done = acks;
        acks = { ids: [], tokens: [] };
        s.completed += await completeJobs(o.sql, done);
      }
      if (
        fails.length > 0 || handBack.length > 0 ||
        (stop.signal.aborted && running + local.length === 0)
      ) continue;
      // Idle: until the next poll, or until claiming must stop (then the loop ends).
      const claimsEnd = jobsEnd - reserveMs;
      await sleep(idle ? Math.max(1, Math.min(idleUntil - now(), claimsEnd - now())) : 1000);
    }
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    if (listener) await listener.unlisten().catch(() => {});
  }
  // Leftovers: acks and failures of the last jobs, anything claimed but never started.
  s.completed += await completeJobs(o.sql, acks);
  for (const job of local.splice(0)) notStart(job, stop.signal.aborted ? "shutdown" : "budget");
  await flush();
  s.durationMs = now() - started;
  return s;
}
