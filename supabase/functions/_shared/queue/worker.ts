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
import { describeError, isInstance } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import type { Clock } from "../core/time.ts";
import type { SpanExporter } from "../core/otlp.ts";
import { WorkerUnloadError } from "./errors.ts";
import { JOB_DEFAULTS, type JobRegistry } from "./job.ts";
import { leaseMarginMs, type LeasePlan, leasePlan } from "./lease.ts";
import { effectiveMaxAttempts, retryWindow } from "./retry_policy.ts";
import {
  type ClaimedJob,
  type HandBackReason,
  type JobOutcome,
  runJob,
  timeoutOf,
} from "./run_job.ts";
import {
  ackAndClaim,
  completeJobs,
  extendLease,
  extendLeases,
  type FailedJob,
  failJobs,
} from "./sql.ts";
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
   * One lease for every job. Default: each job's own timeout plus a margin
   * (lease.ts), renewed before a start if the job waited long for a slot.
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
  /** Span export: a span per run, flushed when the run ends. */
  spans?: SpanExporter;
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

/** Claims of this many jobs or more are split in two concurrent halves while the queue is deep. */
export const SPLIT_CLAIM_AT = 100;

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
  /** Jobs ended so far, and the count and time at the last claim (the adaptive batch's rate). */
  #endedCount = 0;
  #rateMark = { ended: 0, at: 0 };
  /** The lease of every job (`leaseMs`), or null: each type's own (`#leases`). */
  readonly #leaseMs: number | null;
  readonly #leases: LeasePlan;
  /** Local instant each waiting job's lease ends (claim sent + its lease): no clock skew. */
  readonly #leaseEnds = new Map<number, number>();
  /** Waiting jobs whose lease no longer covers a run: renewed before they start. */
  #renew: ClaimedJob[] = [];
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
  /** The last claim came back full: the queue is deep. */
  #deep = false;
  /** A wake-up came while the loop was not asleep: its next sleep returns at once. */
  #woken = false;
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
    this.#leaseMs = options.leaseMs ?? null;
    this.#leases = leasePlan(options.registry);
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
      // Hand back what has not started now, not once the running jobs end: the
      // runtime may end the isolate before a handler that ignores its signal does.
      for (const job of this.#waiting.splice(0)) this.#notStarted(job, "shutdown");
      for (const job of this.#renew.splice(0)) this.#notStarted(job, "shutdown");
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
    // Whatever woke the loop before this turn, the turn itself handles.
    this.#woken = false;
    await this.flushOutcomes();
    if (this.#renew.length > 0) await this.#renewLeases();
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
      acks > 0 &&
      (idle || acks >= this.#batchSize || this.#now() - this.#acksSince > 500 ||
        this.#stop.signal.aborted)
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
    const leaseSeconds = (this.#leaseMs ?? this.#leases.defaultMs) / 1000;
    const leaseByType = this.#leaseMs === null ? this.#leases.json : null;
    // A deep queue and a big claim: two half claims at once, on two connections of
    // the pool, so two backends do the claim's work (the drain is bound by the
    // database, not by handlers). Both halves together hold no more than one claim.
    const half = this.#deep && want >= SPLIT_CLAIM_AT ? Math.floor(want / 2) : 0;
    const sent = this.#now();
    const claim = (acks: Acks, n: number, sweep: boolean) =>
      ackAndClaim(sql, acks, this.#queue, n, leaseSeconds, this.#workerId, sweep, leaseByType);
    const acks = this.#takeAcks();
    // The acknowledgements are split too, so the halves take about as long.
    const cut = half > 0 ? acks.ids.length >> 1 : acks.ids.length;
    const [got, more] = await Promise.all([
      claim(
        { ids: acks.ids.slice(0, cut), tokens: acks.tokens.slice(0, cut) },
        want - half,
        reclaim,
      ),
      half > 0
        ? claim({ ids: acks.ids.slice(cut), tokens: acks.tokens.slice(cut) }, half, false)
        : null,
    ]);
    if (more) {
      got.jobs.push(...more.jobs);
      got.acked += more.acked;
    }
    this.#deep = got.jobs.length === want;
    this.#summary.completed += got.acked;
    this.#summary.claimed += got.jobs.length;
    this.#resize(got.jobs.length, want);
    if (got.jobs.length > 0) {
      if (this.#leaseMs === null) {
        for (const job of got.jobs) this.#leaseEnds.set(job.id, sent + this.#leaseOf(job));
      }
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
      if (!this.#leaseCoversRun(job, left)) {
        this.#renew.push(job);
        this.#wakeUp();
        continue;
      }
      this.#leaseEnds.delete(job.id);
      this.#running++;
      const { sql, registry } = this.#options;
      runJob(job, registry, {
        stop: this.#stop.signal,
        extendLease: (ms) => extendLease(sql, job.id, job.lease_token, ms),
        budgetMs: Number.isFinite(left) ? left : undefined,
        log: this.#log,
        spans: this.#options.spans,
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
        if (outcome.reason === "shutdown" && this.#chargesRunningJobs) {
          // The runtime ran out of CPU or memory: the running jobs may be why.
          this.#record(job, { kind: "retry", error: outcome.error });
          return;
        }
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
    this.#leaseEnds.delete(job.id);
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
    for (const job of this.#renew.splice(0)) this.#notStarted(job, why);
    await this.flushOutcomes();
    await this.#options.spans?.flush();
    this.#summary.durationMs = this.#now() - this.#started;
  }

  /** Jobs held at most: the batch running and the next claim in flight, so the database and handlers overlap. */
  get #capacity(): number {
    return this.#batchSize * 2;
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
    return this.#waiting.length + this.#renew.length + this.#running;
  }

  get #chargesRunningJobs(): boolean {
    const reason: unknown = this.#stop.signal.reason;
    return isInstance(reason, WorkerUnloadError) && reason.chargesRunningJobs;
  }

  #leaseOf(job: ClaimedJob): number {
    return this.#leases.byType.get(job.job_type) ?? this.#leases.defaultMs;
  }

  /**
   * True when the job's lease outlasts its run (its timeout, capped by the
   * budget left) plus half the margin for the acknowledgement. A caller-chosen
   * `leaseMs` is taken as is.
   */
  #leaseCoversRun(job: ClaimedJob, budgetLeftMs: number): boolean {
    const end = this.#leaseEnds.get(job.id);
    if (this.#leaseMs !== null || end === undefined) return true;
    const timeout = timeoutOf(this.#options.registry.get(job.job_type));
    const run = Math.min(timeout, budgetLeftMs);
    return end - this.#now() >= run + leaseMarginMs(timeout) / 2;
  }

  /**
   * Renews the leases of jobs that waited too long for a slot (one statement per
   * lease length), then starts them; a job whose lease was lost meanwhile belongs
   * to another worker now and is dropped.
   */
  async #renewLeases(): Promise<void> {
    const jobs = this.#renew;
    this.#renew = [];
    const byLease = Map.groupBy(jobs, (job) => this.#leaseOf(job));
    const kept: ClaimedJob[] = [];
    for (const [ms, group] of byLease) {
      const sent = this.#now();
      const held = await extendLeases(this.#options.sql, {
        ids: group.map((j) => j.id),
        tokens: group.map((j) => j.lease_token),
      }, ms);
      for (const job of group) {
        if (held.has(job.id)) {
          this.#leaseEnds.set(job.id, sent + ms);
          kept.push(job);
        } else {
          this.#leaseEnds.delete(job.id);
          this.#log.warn("job lease lost before it started", {
            jobId: job.id,
            jobType: job.job_type,
          });
        }
      }
    }
    this.#waiting.unshift(...kept.sort((a, b) => jobs.indexOf(a) - jobs.indexOf(b)));
    this.startJobs();
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
    // A job that ended while the loop awaited a statement (no sleeper yet) must not
    // leave the loop sleeping a whole interval with nothing running.
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
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
    if (wake) wake();
    else this.#woken = true;
  }
}
