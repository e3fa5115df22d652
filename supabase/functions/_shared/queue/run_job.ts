/**
 * Runs one claimed job: looks up its definition, re-validates the payload, calls
 * the handler under a timeout, and classifies the result. Never throws, whatever
 * the handler throws or returns: every path ends in an outcome the worker
 * acknowledges in its next batch.
 */
import { describeError, isInstance, safeGet } from "../core/errors.ts";
import { plainPath } from "../core/json_pointer.ts";
import { withTimeout } from "../core/time.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { continueTrace, type TraceContext, traceFields } from "../core/trace.ts";
import type { SpanExporter } from "../core/otlp.ts";
import { DeferJobError, JobTimeoutError, PermanentJobError, WorkerBudgetError } from "./errors.ts";
import { JOB_DEFAULTS, type JobContext, type JobDefinition, type JobRegistry } from "./job.ts";
import { effectiveMaxAttempts } from "./retry_policy.ts";

/** A claimed job (`queue.claim` returns these columns and more; the worker keeps these). */
export interface ClaimedJob {
  id: number;
  job_type: string;
  payload: unknown;
  attempts: number;
  max_attempts: number;
  lease_token: string;
  /** When the lease ends (`queue.claim`); the worker tracks leases locally instead. */
  lease_until?: string;
  /** The enqueuing span's W3C traceparent, if it was traced. */
  traceparent?: string | null;
  tracestate?: string | null;
}

/** Why a job went back to the queue without spending its attempt. */
export type HandBackReason = "budget" | "shutdown";

/**
 * What happened: done, retried, dead-lettered at once, deferred (not tried:
 * back after `delayMs`), or released (cut off by the worker, not by itself).
 */
export type JobOutcome =
  | { kind: "done" }
  | { kind: "retry"; error: string }
  | { kind: "dead"; reason: string; error: string }
  | { kind: "defer"; delayMs: number; error: string }
  | { kind: "release"; reason: HandBackReason; error: string };

/** Context the worker provides for one run. */
export interface RunJobOptions {
  /** Aborts the handler when the worker itself must stop. */
  stop?: AbortSignal;
  extendLease(ms: number): Promise<boolean>;
  /** What is left of the worker's budget for this run; caps the job's own timeout. */
  budgetMs?: number;
  /** The worker's logger; the handler's `ctx.log` is its child (default: console). */
  log?: Logger;
  /** Span export: one consumer span per run, when configured. */
  spans?: SpanExporter;
}

/** Deferrals wait at least this long: a zero delay would make a drain spin on one job. */
const MIN_DEFER_MS = 1_000;
const MAX_DEFER_MS = 86_400_000;

/** The definition's timeout, or the default. */
export function timeoutOf(def: JobDefinition | undefined): number {
  return def?.timeoutMs ?? JOB_DEFAULTS.timeoutMs;
}

/** Runs `job` with its definition from `registry`. */
export async function runJob(
  job: ClaimedJob,
  registry: JobRegistry,
  options: RunJobOptions,
): Promise<JobOutcome> {
  const startMs = options.spans ? Date.now() : 0;
  const span = new RunTrace(job, options.log);
  let outcome: JobOutcome;
  try {
    outcome = await run(job, registry, options, span);
  } catch (error) {
    // Only a bug of our own gets here; the job is retried rather than lost.
    outcome = { kind: "retry", error: describeError(error) };
  }
  options.spans?.record({
    trace: span.trace,
    name: `job ${job.job_type}`,
    kind: "consumer",
    startMs,
    endMs: Date.now(),
    ...("error" in outcome && outcome.kind !== "defer" ? { error: outcome.error } : {}),
    attributes: { "job.id": job.id, "job.attempt": job.attempts, "job.outcome": outcome.kind },
  });
  return outcome;
}

async function run(
  job: ClaimedJob,
  registry: JobRegistry,
  options: RunJobOptions,
  span: RunTrace,
): Promise<JobOutcome> {
  const def = registry.get(job.job_type);
  if (!def) {
    return {
      kind: "dead",
      reason: "unknown_job_type",
      error: `no handler for job type "${job.job_type}"`,
    };
  }
  const parsed = def.schema.safeParse(job.payload);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${plainPath(i.path)}: ${i.message}`);
    return { kind: "dead", reason: "invalid_payload", error: issues.join("; ").slice(0, 2000) };
  }
  const ctx = jobContext(job, def, options, span);
  const ownMs = timeoutOf(def);
  const byBudget = options.budgetMs !== undefined && options.budgetMs < ownMs;
  const limitMs = byBudget ? Math.max(0, Math.floor(options.budgetMs!)) : ownMs;
  // Set when our timer fired: the handler's own rejection (after the abort) may
  // win the race, yet the cause is ours.
  let cutOff = false;
  try {
    await withTimeout(
      (signal) => def.handler(parsed.data, ctx(signal)),
      limitMs,
      () => {
        cutOff = true;
        return byBudget ? new WorkerBudgetError(limitMs) : new JobTimeoutError(ownMs);
      },
      options.stop,
    );
    // A traced job says it ran, so the logs follow a request through every job it
    // caused; untraced jobs stay silent (a drain may complete thousands a second).
    if (job.traceparent) span.log.info("job done");
    return { kind: "done" };
  } catch (error) {
    if (cutOff && byBudget) {
      return {
        kind: "release",
        reason: "budget",
        error: describeError(new WorkerBudgetError(limitMs)),
      };
    }
    if (cutOff) return { kind: "retry", error: describeError(new JobTimeoutError(ownMs)) };
    if (options.stop?.aborted) {
      return { kind: "release", reason: "shutdown", error: describeError(error) };
    }
    return classify(error);
  }
}

/** A run's span and logger, made on first use: a job that neither logs nor calls out pays nothing. */
class RunTrace {
  #trace: TraceContext | undefined;
  #log: Logger | undefined;
  constructor(readonly job: ClaimedJob, readonly base: Logger | undefined) {}
  get trace(): TraceContext {
    return this.#trace ??= continueTrace(this.job.traceparent, this.job.tracestate);
  }
  get log(): Logger {
    return this.#log ??= (this.base ?? createLogger("info", { component: "queue-worker" })).child({
      jobId: this.job.id,
      jobType: this.job.job_type,
      attempt: this.job.attempts,
      ...traceFields(this.trace),
    });
  }
}

/** The handler's context. */
function jobContext(
  job: ClaimedJob,
  def: JobDefinition,
  options: RunJobOptions,
  span: RunTrace,
): (signal: AbortSignal) => JobContext {
  return (signal) => ({
    id: job.id,
    type: job.job_type,
    attempt: job.attempts,
    leaseToken: job.lease_token,
    maxAttempts: effectiveMaxAttempts(job.max_attempts, def),
    signal,
    extendLease: options.extendLease,
    get trace() {
      return span.trace;
    },
    get log() {
      return span.log;
    },
  });
}

function classify(error: unknown): JobOutcome {
  if (isInstance(error, PermanentJobError)) {
    const reason = safeGet(error, "reason");
    return {
      kind: "dead",
      reason: typeof reason === "string" && reason ? reason.slice(0, 200) : "non_retryable",
      error: describeError(error),
    };
  }
  if (isInstance(error, DeferJobError)) {
    const asked = safeGet(error, "delayMs");
    const delayMs = typeof asked === "number" && Number.isFinite(asked)
      ? Math.min(Math.max(asked, MIN_DEFER_MS), MAX_DEFER_MS)
      : MIN_DEFER_MS;
    return { kind: "defer", delayMs, error: describeError(error) };
  }
  return { kind: "retry", error: describeError(error) };
}
