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
 * NOTIFY (or polls) until `signal` aborts. A NOTIFY that arrives while a claim is
 * in flight is not lost: the worker goes idle only if none arrived meanwhile.
 *
 * One loop turn: {@link WorkerLoop.flushOutcomes} (failures and hand-backs),
 * {@link WorkerLoop.claimIfRoom} (acknowledging finished jobs in the same round
 * trip), {@link WorkerLoop.startJobs}; {@link WorkerLoop.finish} at the end.
 *
 * @example
 * const summary = await runWorker({ sql, registry, budgetMs: 50_000 });
 */
import type { Sql } from "npm:postgres@3";
import { describeError } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import type { Clock } from "../core/time.ts";
import { JOB_DEFAULTS, type JobRegistry } from "./job.ts";
import { effectiveMaxAttempts, retryWindow } from "./retry_policy.ts";
import {
  type ClaimedJob,
  type HandBackReason,
  type JobOutcome,
  runJob,
  timeoutOf,
} from "./run_job.ts";
import { ackAndClaim, completeJobs, extendLease, type FailedJob, failJobs } from "./sql.ts";
import { type HandBack, handBackJobs, logFailures } from "./worker_report.ts";

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  sql: Sql;
  registry: JobRegistry;
  queue?: string;
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /**
   * Jobs claimed per round trip, fixed. Default: adaptive, from 2 x concurrency
   * up to {@link WorkerOptions.maxBatchSize} (see {@link nextBatchSize}).
   */
  batchSize?: number;
  /** Adaptive claims grow up to this many jobs (default 500); ignored with `batchSize`. */
  maxBatchSize?: number;
  /**
   * Lease per claim; default covers the jobs held after the claim, a wave of
   * `concurrency` at a time at the longest timeout, plus 10 s.
   */
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
  now?: Clock;
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
function budgetReserveMs(budgetMs: number): number {
  return Math.min(2_000, Math.max(100, budgetMs / 10));
}

/** Default ceiling of an adaptive claim. */
export const MAX_BATCH_SIZE = 500;

/**
 * How long the jobs of one adaptive claim may take to run, at the rate jobs have
 * been ending: claims grow only while handlers are fast, so a worker never sits
 * on more than a fraction of a second of another worker's work.
 */
export const BATCH_WORK_MS = 250;

/**
 * The next adaptive claim size. A claim that came back short means the queue is
 * shallow: back to the smallest batch, so a lone job is claimed, started and
 * acknowledged at once and workers share a trickle fairly. A full claim means it
 * is deep: double, but no further than the jobs that ended per millisecond since
 * the last claim times {@link BATCH_WORK_MS} (slow handlers keep small claims).
 * Bigger claims are fewer round trips per job, which is what drain rate is bound by.
 */
export function nextBatchSize(
  current: number,
  claim: { got: number; want: number },
  recent: { ended: number; elapsedMs: number },
  bounds: { min: number; max: number },
): number {
  if (claim.got < claim.want) return bounds.min;
  // Nothing ended since the last claim (claims back to back): no rate to go by yet.
  if (recent.ended === 0 || recent.elapsedMs <= 0) return current;
  const fits = Math.floor((recent.ended / recent.elapsedMs) * BATCH_WORK_MS);
  return Math.max(bounds.min, Math.min(bounds.max, current * 2, fits));
}

/** Runs the loop until the queue is empty (drain), or the budget, maxJobs or signal end it. */
export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  return await new WorkerLoop(options).run();
}

/** Finished jobs to complete: parallel id and lease-token lists, as `queue.complete` takes them. */
type Acks = { ids: number[]; tokens: string[] };

/** One run of the worker: its settings, what it holds, and what it did. */
class WorkerLoop {
  readonly #options: WorkerOptions;
  readonly #now: Clock;
  readonly #queue: string;
  readonly #concurrency: number;
  /** The claim size now; it moves within #batchBounds unless `batchSize` fixed it. */
  #batchSize: number;
  readonly #batchBounds: { min: number; max: number } | null;
  /** The longest handler timeout of the registry: what a lease must cover per wave of jobs. */
  readonly #maxTimeout: number;
  /** Jobs ended so far, and the count and time at the last claim (the adaptive batch's rate). */
  #endedCount = 0;
  #rateMark = { ended: 0, at: 0 };
  /** Handlers must have ended by then; a claim or a start needs a reserve's worth left. */
  readonly #jobsEnd: number;
  readonly #reserveMs: number;
  readonly #log: Logger;
  readonly #workerId: string;
  readonly #stop = new AbortController();
  readonly #started: number;
  readonly #summary: WorkerSummary = {
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
  /** Done jobs not yet acknowledged, and since when the oldest waits. */
  #acks: Acks = { ids: [], tokens: [] };
  #acksSince = 0;
  /** Failed jobs for the next `queue.fail`. */
  #failures: (FailedJob & { job: ClaimedJob })[] = [];
  /** Jobs going back without spending an attempt (deferred, cut off, never started). */
  #handBacks: HandBack[] = [];
  /** Claimed jobs not started yet. */
  readonly #waiting: ClaimedJob[] = [];
  #running = 0;
  /** Listen mode: no claim before this instant unless a NOTIFY comes. */
  #idleUntil = 0;
  /** NOTIFYs received: an empty claim goes idle only if none arrived while it was in flight. */
  #notifications = 0;
  #lastReclaim = -Infinity;
  /** Ends the current idle wait early (a job ended, a NOTIFY, an abort). */
  #wake: (() => void) | null = null;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#started = this.#now();
    this.#rateMark = { ended: 0, at: this.#started };
    this.#queue = options.queue ?? JOB_DEFAULTS.queue;
    this.#concurrency = Math.max(1, options.concurrency ?? 10);
    const min = this.#concurrency * 2;
    this.#batchBounds = options.batchSize === undefined
      ? { min, max: Math.max(min, options.maxBatchSize ?? MAX_BATCH_SIZE) }
      : null;
    this.#batchSize = Math.max(1, options.batchSize ?? min);
    const timeouts = [...options.registry.values()].map(timeoutOf);
    this.#maxTimeout = timeouts.length ? Math.max(...timeouts) : timeoutOf(undefined);
    const deadline = this.#started + (options.budgetMs ?? Infinity);
    this.#reserveMs = options.budgetMs === undefined ? 0 : budgetReserveMs(options.budgetMs);
    this.#jobsEnd = deadline - this.#reserveMs;
    this.#log = options.log ?? createLogger("info", { component: "queue-worker" });
    this.#workerId = options.workerId ?? `w-${crypto.randomUUID().slice(0, 8)}`;
  }

  async run(): Promise<WorkerSummary> {
    const { signal, sql } = this.#options;
    const onAbort = () => {
      this.#stop.abort(signal?.reason);
      this.#wakeUp();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const listener = this.#options.mode === "listen"
      ? await sql.listen("queue_jobs", (name) => {
        if (name !== this.#queue) return;
        this.#notifications++;
        this.#idleUntil = 0;
        this.#wakeUp();
      })
      : null;
    try {
      while (await this.#turn());
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (listener) await listener.unlisten().catch(() => {});
    }
    await this.finish();
    return this.#summary;
  }

  /** One turn of the loop; false once it is over. */
  async #turn(): Promise<boolean> {
    await this.flushOutcomes();
    const stopReason = this.#stopReason();
    if (stopReason !== null && this.#summary.stoppedBy === "empty") {
      this.#summary.stoppedBy = stopReason;
    }
    if (stopReason !== null && this.#held === 0 && !this.#outcomesPending) return false;
    if (stopReason === null) {
      const claim = await this.claimIfRoom();
      if (claim === "claimed") return true;
      if (claim === "drained") return false;
    }
    const idle = this.#held === 0;
    const acks = this.#acks.ids.length;
    if (
      acks > 0 && (idle || acks >= this.#batchSize || this.#now() - this.#acksSince > 500)
    ) {
      this.#summary.completed += await completeJobs(this.#options.sql, this.#takeAcks());
    }
    if (this.#outcomesPending || (this.#stop.signal.aborted && this.#held === 0)) return true;
    // Idle: until the next poll, or until claiming must stop (then the loop ends).
    const now = this.#now();
    const claimsEnd = this.#jobsEnd - this.#reserveMs;
    await this.#sleep(idle ? Math.max(1, Math.min(this.#idleUntil - now, claimsEnd - now)) : 1000);
    return true;
  }

  /** Why claiming must stop now, or null. */
  #stopReason(): StopReason | null {
    if (this.#stop.signal.aborted) return "shutdown";
    if (this.#jobsEnd - this.#now() < this.#reserveMs) return "budget";
    const { maxJobs } = this.#options;
    if (maxJobs !== undefined && this.#summary.claimed >= maxJobs) return "maxJobs";
    return null;
  }

  /**
   * Claims the next batch when there is room (acknowledging finished jobs in the
   * same round trip) and starts it. "drained": a drain found nothing left to do.
   */
  async claimIfRoom(): Promise<"claimed" | "empty" | "drained" | "no room"> {
    const held = this.#held;
    const drain = (this.#options.mode ?? "drain") === "drain";
    const room = held <= this.#capacity - this.#batchSize;
    if (!room || !(this.#now() >= this.#idleUntil || (drain && held === 0))) return "no room";
    const want = Math.min(
      this.#batchSize,
      this.#capacity - held,
      (this.#options.maxJobs ?? Infinity) - this.#summary.claimed,
    );
    // Sweeping expired leases costs a statement; once a second is soon enough.
    const reclaim = this.#now() - this.#lastReclaim >= 1000;
    if (reclaim) this.#lastReclaim = this.#now();
    const notified = this.#notifications;
    const { sql } = this.#options;
    const leaseSeconds = this.#leaseMs(held + want) / 1000;
    const got = await ackAndClaim(
      sql,
      this.#takeAcks(),
      this.#queue,
      want,
      leaseSeconds,
      this.#workerId,
      reclaim,
    );
    this.#summary.completed += got.acked;
    this.#summary.claimed += got.jobs.length;
    this.#resize(got.jobs.length, want);
    if (got.jobs.length > 0) {
      this.#waiting.push(...got.jobs);
      this.startJobs();
      return "claimed";
    }
    // Outcomes that arrived during the claim are flushed first (next turn). What
    // is held is re-read: jobs may have finished while the claim was in flight,
    // and a drain with nothing left must end now, not after a poll interval.
    if (this.#held === 0 && drain && !this.#outcomesPending) return "drained";
    if (this.#notifications === notified) this.#idleUntil = this.#now() + this.#pollMs;
    return "empty";
  }

  /** Starts waiting jobs while there is a free slot; jobs the budget or a shutdown stop go back. */
  startJobs(): void {
    while (this.#running < this.#concurrency && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      if (this.#stop.signal.aborted) {
        this.#notStarted(job, "shutdown");
        continue;
      }
      const left = this.#jobsEnd - this.#now();
      if (left < this.#reserveMs) {
        this.#notStarted(job, "budget");
        continue;
      }
      this.#running++;
      const { sql, registry } = this.#options;
      runJob(job, registry, {
        stop: this.#stop.signal,
        extendLease: (ms) => extendLease(sql, job.id, job.lease_token, ms),
        budgetMs: Number.isFinite(left) ? left : undefined,
      }).then(
        (outcome) => this.#ended(job, outcome),
        (error) => this.#ended(job, { kind: "retry", error: describeError(error) }),
      );
    }
  }

  /** A job ended: record its outcome, start the next, and wake the loop if it has work. */
  #ended(job: ClaimedJob, outcome: JobOutcome): void {
    this.#record(job, outcome);
    this.#running--;
    this.#endedCount++;
    this.startJobs();
    // Wake the loop only when it has something to do: room for the next claim,
    // or nothing left running (a wake per job costs a timer each).
    if (
      this.#held <= this.#capacity - this.#batchSize || this.#running === 0 ||
      this.#outcomesPending
    ) this.#wakeUp();
  }

  #record(job: ClaimedJob, outcome: JobOutcome): void {
    switch (outcome.kind) {
      case "done":
        if (this.#acks.ids.length === 0) this.#acksSince = this.#now();
        this.#acks.ids.push(job.id);
        this.#acks.tokens.push(job.lease_token);
        return;
      case "retry":
      case "dead": {
        const def = this.#options.registry.get(job.job_type);
        const window = retryWindow(def?.backoff, job.attempts);
        this.#failures.push({
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
      case "defer": {
        const { delayMs, error } = outcome;
        this.#handBacks.push({ job, why: "deferred", delayMs, error });
        return;
      }
      case "release":
        this.#summary.cutOff[outcome.reason]++;
        this.#handBacks.push({ job, why: outcome.reason, delayMs: 0, error: outcome.error });
        return;
      default: {
        const never: never = outcome;
        throw new TypeError(`unknown job outcome ${JSON.stringify(never)}`);
      }
    }
  }

  #notStarted(job: ClaimedJob, why: HandBackReason): void {
    this.#summary.notStarted[why]++;
    this.#handBacks.push({ job, why, delayMs: 0, error: null });
  }

  /** Writes failures (`queue.fail`) and hand-backs (`queue.release`), and logs them. */
  async flushOutcomes(): Promise<void> {
    const { sql } = this.#options;
    if (this.#failures.length > 0) {
      const failures = this.#failures;
      this.#failures = [];
      const results = await failJobs(sql, failures);
      for (const r of results) {
        if (r.outcome === "dead_lettered") this.#summary.deadLettered++;
        else this.#summary.retried++;
      }
      logFailures(this.#log, failures, results);
    }
    if (this.#handBacks.length > 0) {
      const handBacks = this.#handBacks;
      this.#handBacks = [];
      const counts = await handBackJobs(sql, this.#log, handBacks);
      this.#summary.released += counts.released;
      this.#summary.deferred += counts.deferred;
    }
  }

  /** Leftovers: acks and failures of the last jobs, and anything claimed but never started. */
  async finish(): Promise<void> {
    this.#summary.completed += await completeJobs(this.#options.sql, this.#takeAcks());
    const why = this.#stop.signal.aborted ? "shutdown" : "budget";
    for (const job of this.#waiting.splice(0)) this.#notStarted(job, why);
    await this.flushOutcomes();
    this.#summary.durationMs = this.#now() - this.#started;
  }

  /** Jobs held at most: the batch running and the next claim in flight, so the database and handlers overlap. */
  get #capacity(): number {
    return this.#batchSize * 2;
  }

  /**
   * The lease of a claim that brings the jobs held to `held`: the last of them
   * starts after the others, a wave of `concurrency` at a time, each wave at most
   * the longest timeout; plus 10 s for the acknowledgement.
   */
  #leaseMs(held: number): number {
    return this.#options.leaseMs ??
      this.#maxTimeout * Math.ceil(held / this.#concurrency) + 10_000;
  }

  #resize(got: number, want: number): void {
    if (this.#batchBounds === null) return;
    const now = this.#now();
    const recent = {
      ended: this.#endedCount - this.#rateMark.ended,
      elapsedMs: now - this.#rateMark.at,
    };
    if (recent.ended > 0) this.#rateMark = { ended: this.#endedCount, at: now };
    this.#batchSize = nextBatchSize(this.#batchSize, { got, want }, recent, this.#batchBounds);
  }

  /** Jobs claimed and not yet ended. */
  get #held(): number {
    return this.#waiting.length + this.#running;
  }

  get #outcomesPending(): boolean {
    return this.#failures.length > 0 || this.#handBacks.length > 0;
  }

  get #pollMs(): number {
    return this.#options.pollMs ?? 1000;
  }

  #takeAcks(): Acks {
    const acks = this.#acks;
    this.#acks = { ids: [], tokens: [] };
    return acks;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
