/**
 * Errors a circuit breaker raises, and the default rules for what counts as a
 * dependency failure.
 */

/**
 * Raised when a breaker refuses a call. Each breaker builds exactly one of
 * these, without a stack trace, and rejects every refused call with it: a
 * refusal must cost nothing (<= 0.2 µs, docs/benchmarks.md), and a stack would only
 * point at the breaker anyway.
 */
export class CircuitOpenError extends Error {
  /** The breaker's key (host, dependency name). */
  readonly key: string;
  readonly #retryAfterMs: () => number;

  constructor(key: string, retryAfterMs: () => number) {
    super(`circuit "${key}" is open`);
    this.name = "CircuitOpenError";
    this.key = key;
    this.#retryAfterMs = retryAfterMs;
  }

  /** Milliseconds until the breaker lets a probe through (0 when it already would). */
  get retryAfterMs(): number {
    return this.#retryAfterMs();
  }
}

/** Builds a {@link CircuitOpenError} without paying for a stack trace. */
export function constantOpenError(key: string, retryAfterMs: () => number): CircuitOpenError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new CircuitOpenError(key, retryAfterMs);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Raised when a call guarded by a breaker exceeds its time budget. */
export class BreakerTimeoutError extends Error {
  readonly key: string;
  readonly timeoutMs: number;

  constructor(key: string, timeoutMs: number, cause?: unknown) {
    super(`call through circuit "${key}" timed out after ${timeoutMs} ms`, { cause });
    this.name = "BreakerTimeoutError";
    this.key = key;
    this.timeoutMs = timeoutMs;
  }
}

/** Decides whether a thrown value is the dependency's fault. */
export type FailureClassifier = (error: unknown) => boolean;

/** Decides whether a returned value (e.g. a 503 `Response`) is the dependency's fault. */
export type ResultClassifier = (value: unknown) => boolean;

/** Statuses that, although 4xx, say the dependency is struggling rather than the caller wrong. */
const STRESS_4XX = new Set([408, 429]);

/** True for a status code that should count against the dependency. */
function isFailureStatus(status: number): boolean {
  return status >= 500 || STRESS_4XX.has(status);
}

/**
 * Default error classifier: timeouts and network errors count; errors carrying
 * a 4xx `status` (the caller's own mistake) do not, except 408 and 429.
 */
export const defaultIsFailure: FailureClassifier = (error) => {
  if (error instanceof BreakerTimeoutError) return true;
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === "number" && status >= 400 && status < 500) return STRESS_4XX.has(status);
  return true;
};

/** Default result classifier: a `Response` with a failure status counts; anything else succeeds. */
export const defaultIsFailureResult: ResultClassifier = (value) =>
  value instanceof Response && isFailureStatus(value.status);
