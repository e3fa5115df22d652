/**
 * Errors of the job queue. A handler throws {@link PermanentJobError} to say
 * "retrying cannot help"; anything else it throws is retried with backoff.
 */
import { LayerError } from "../core/errors.ts";
import type { FieldError } from "../core/json_pointer.ts";

/** Thrown by a handler: dead-letter the job now, do not retry. */
export class PermanentJobError extends Error {
  /** Stored as the dead letter's `reason` (default `non_retryable`). */
  readonly reason: string;
  constructor(message: string, options: { reason?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "PermanentJobError";
    this.reason = options.reason ?? "non_retryable";
  }
}

/**
 * Thrown by a handler: the job could not be tried now (e.g. its dependency's
 * circuit breaker is open). It goes back to the queue for `delayMs` (at least
 * 1 s) without spending an attempt: a refusal is not a try.
 */
export class DeferJobError extends Error {
  constructor(readonly delayMs: number, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "DeferJobError";
  }
}

/** A handler ran past its `timeoutMs`; retried like any other failure. */
export class JobTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`job timed out after ${timeoutMs} ms`);
    this.name = "JobTimeoutError";
  }
}

/** The worker's wall-clock budget ended mid-run: the job goes back without spending an attempt. */
export class WorkerBudgetError extends Error {
  constructor(readonly afterMs: number) {
    super(`cut off by the worker's budget after ${afterMs} ms`);
    this.name = "WorkerBudgetError";
  }
}

/** A payload failed its job's schema at enqueue time (code `invalid_job_payload`; a 422). */
export class JobPayloadError extends LayerError {
  override readonly name = "JobPayloadError";
  /** The status http/problem.ts answers it with (callers outside HTTP read it too). */
  readonly status = 422;
  constructor(readonly jobType: string, readonly errors: FieldError[]) {
    super(
      "invalid_job_payload",
      `The payload does not match the schema of job type "${jobType}".`,
    );
  }
}

/** Enqueue options out of range (a programming error, so a 500 if it reaches HTTP). */
export class QueueOptionsError extends LayerError {
  override readonly name = "QueueOptionsError";
  constructor(message: string) {
    super("invalid_enqueue_options", message);
  }
}

/**
 * A payload over the queue's limit (`queue.max_payload_bytes()`, 1 MiB of JSON):
 * refused before it is sent when its size shows it, else mapped from SQLSTATE 54000.
 * Code `job_payload_too_large`; a 413.
 */
export class PayloadTooLargeError extends LayerError {
  override readonly name = "PayloadTooLargeError";
  /** The status http/problem.ts answers it with (callers outside HTTP read it too). */
  readonly status = 413;
  constructor(readonly bytes: number | null, readonly limit: number, cause?: unknown) {
    super(
      "job_payload_too_large",
      bytes === null
        ? `The job payload is larger than the queue's limit of ${limit} bytes of JSON.`
        : `The job payload is ${bytes} bytes of JSON; the queue's limit is ${limit} bytes.`,
      { cause },
    );
  }
}

/**
 * The abort reason of a worker whose runtime announced its end (`beforeunload`):
 * it stops claiming and hands back what it holds. `reason` is the runtime's.
 */
export class WorkerUnloadError extends Error {
  constructor(readonly reason: string) {
    super(`the runtime is ending this worker (${reason})`);
    this.name = "WorkerUnloadError";
  }
  /**
   * CPU and memory limits may be the running jobs' own doing: their attempts are
   * spent, so a job that always exhausts the worker ends in dead letters instead
   * of looping. Wall clock, early drop and termination are not theirs.
   */
  get chargesRunningJobs(): boolean {
    return this.reason === "cpu" || this.reason === "memory";
  }
}
