/**
 * Runs one claimed job: looks up its definition, re-validates the payload, calls
 * the handler under a timeout, and classifies the result. Never throws: every
 * path ends in an outcome the worker acknowledges in its next batch.
 */
import { JobTimeoutError, PermanentJobError } from "./errors.ts";
import { JOB_DEFAULTS, type JobDefinition, type JobRegistry } from "./job.ts";

/** A job as `queue.claim` / `queue.ack_and_claim` return it. */
export interface ClaimedJob {
  id: number;
  job_type: string;
  payload: unknown;
  attempts: number;
  max_attempts: number;
  lease_token: string;
  lease_until: string;
}

/** What happened: acknowledged as done, retried, or dead-lettered at once. */
export type JobOutcome =
  | { kind: "done" }
  | { kind: "retry"; error: string }
  | { kind: "dead"; reason: string; error: string };

/** Context the worker provides for one run. */
export interface RunJobOptions {
  /** Aborts the handler when the worker itself must stop. */
  stop?: AbortSignal;
  extendLease(ms: number): Promise<boolean>;
}

/** `Name: message`, bounded: error texts are stored with the job. */
export function describeError(error: unknown): string {
  const text = error instanceof Error
    ? `${error.name}: ${error.message}`
    : typeof error === "string"
    ? error
    : (() => {
      try {
        return JSON.stringify(error);
      } catch {
        return String(error);
      }
    })();
  return text.length > 2000 ? text.slice(0, 2000) + "…" : text;
}

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
    const issues = parsed.error.issues.map((i) => `/${i.path.join("/")}: ${i.message}`);
    return { kind: "dead", reason: "invalid_payload", error: issues.join("; ").slice(0, 2000) };
  }
  const timeoutMs = timeoutOf(def);
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onStop: (() => void) | undefined;
  try {
    const result = def.handler(parsed.data, {
      id: job.id,
      type: job.job_type,
      attempt: job.attempts,
      maxAttempts: job.max_attempts,
      signal: controller.signal,
      extendLease: options.extendLease,
    });
    // A synchronous handler has finished already: no timer, no race (the common
    // case for tiny jobs, where a timer per job is a measurable cost).
    if (!isThenable(result)) return { kind: "done" };
    onStop = () => controller.abort(options.stop?.reason);
    options.stop?.addEventListener("abort", onStop, { once: true });
    const running = Promise.resolve(result);
    // A hung handler may settle after we gave up on it; that must not be unhandled.
    running.catch(() => {});
    await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new JobTimeoutError(timeoutMs);
          controller.abort(error);
          reject(error);
        }, timeoutMs);
      }),
    ]);
    return { kind: "done" };
  } catch (error) {
    if (error instanceof PermanentJobError) {
      return { kind: "dead", reason: error.reason, error: describeError(error) };
    }
    return { kind: "retry", error: describeError(error) };
  } finally {
    clearTimeout(timer);
    if (onStop) options.stop?.removeEventListener("abort", onStop);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
