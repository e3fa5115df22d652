/**
 * Errors of the job queue. A handler throws {@link PermanentJobError} to say
 * "retrying cannot help"; anything else it throws is retried with backoff.
 */
import { type FieldError, HttpError } from "../http/problem.ts";

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

/** A payload failed its job's schema at enqueue time: 422 when it reaches HTTP. */
export class JobPayloadError extends HttpError {
  constructor(jobType: string, errors: FieldError[]) {
    super({
      status: 422,
      code: "invalid_job_payload",
      detail: `The payload does not match the schema of job type "${jobType}".`,
      errors,
    });
    this.name = "JobPayloadError";
  }
}

/** Enqueue options out of range (a programming error, so a 500 if it reaches HTTP). */
export class QueueOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueueOptionsError";
  }
}

/**
 * A payload over the queue's limit (`queue.max_payload_bytes()`, 1 MiB of JSON):
 * refused before it is sent when its size shows it, else mapped from SQLSTATE 54000.
 * A 413 when it reaches HTTP.
 */
export class PayloadTooLargeError extends HttpError {
  constructor(readonly bytes: number | null, readonly limit: number, cause?: unknown) {
    super({
      status: 413,
      code: "job_payload_too_large",
      detail: bytes === null
        ? `The job payload is larger than the queue's limit of ${limit} bytes of JSON.`
        : `The job payload is ${bytes} bytes of JSON; the queue's limit is ${limit} bytes.`,
      cause,
    });
    this.name = "PayloadTooLargeError";
  }
}
