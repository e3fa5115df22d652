/**
 * `fetch` to a dependency with discipline: a timeout per attempt, an optional
 * circuit breaker, and retries with capped, fully jittered exponential backoff
 * that honour `Retry-After`. Only idempotent methods are retried by default.
 *
 * @example
 * const breakers = new BreakerRegistry();
 * const res = await outboundFetch(url, { method: "GET" }, {
 *   breaker: breakers.get(new URL(url).host),
 *   timeoutMs: 5_000,
 *   retries: 2,
 * });
 */
import { BreakerTimeoutError, CircuitOpenError } from "./breaker/errors.ts";
import type { CircuitBreaker } from "./breaker/circuit_breaker.ts";
import { deadlines, isDeadlineReason, sleep } from "../core/time.ts";
import { injectTrace, type TraceContext } from "../core/trace.ts";

/** Options of {@link outboundFetch}. */
export interface OutboundOptions {
  /** Guards the dependency; an open breaker throws {@link CircuitOpenError} at once. */
  breaker?: CircuitBreaker;
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** Extra attempts after the first (default 2). */
  retries?: number;
  /** Backoff before retry n (0-based): random(0, min(maxMs, baseMs * 2^n)) (default 100 / 5000). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Retry POST/PATCH too (only when the dependency deduplicates, e.g. an idempotency key). */
  retryNonIdempotent?: boolean;
  /** A `Retry-After` longer than this is not waited for: the response is returned (default 30 s). */
  maxRetryAfterMs?: number;
  /**
   * The span this call belongs to (`ctx.trace` in a handler or a job): sent as
   * `traceparent`/`tracestate` unless `init.headers` already has a traceparent.
   */
  trace?: TraceContext;
  /** The caller's cancellation (e.g. the incoming request's signal); never retried. */
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Waits between attempts (tests record instead of sleeping). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Milliseconds a `Retry-After` value asks for (delta-seconds or HTTP date), or null. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/** Fetches with timeout, breaker and retries; see {@link OutboundOptions}. */
export async function outboundFetch(
  input: string | URL,
  init: RequestInit = {},
  options: OutboundOptions = {},
): Promise<Response> {
  if (options.trace) {
    const headers = new Headers(init.headers);
    injectTrace(headers, options.trace);
    init = { ...init, headers };
  }
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const method = (init.method ?? "GET").toUpperCase();
  // A stream body can be sent once only; anything else can be replayed.
  const replayable = !(init.body instanceof ReadableStream);
  const retries = replayable && (IDEMPOTENT.has(method) || options.retryNonIdempotent)
    ? Math.max(0, options.retries ?? 2)
    : 0;
  const { baseMs = 100, maxMs = 5_000 } = options.backoff ?? {};
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  const caller = options.signal;

  const attempt = (): Promise<Response> => {
    if (options.breaker) {
      return options.breaker.execute(
        (signal) => doFetch(input, { ...init, signal }),
        { timeoutMs, signal: caller },
      );
    }
    const deadline = deadlines.signal(timeoutMs);
    const signal = caller ? AbortSignal.any([caller, deadline]) : deadline;
    return doFetch(input, { ...init, signal }).catch((error) => {
      if (deadline.aborted && !caller?.aborted) {
        throw new BreakerTimeoutError(String(input), timeoutMs, error);
      }
      throw error;
    });
  };

  for (let n = 0;; n++) {
    let delay: number;
    try {
      const res = await attempt();
      if (n >= retries || !RETRY_STATUS.has(res.status)) return res;
      const asked = parseRetryAfter(res.headers.get("retry-after"));
      if (asked !== null && asked > maxRetryAfterMs) return res; // longer than we will wait
      delay = asked ?? random() * Math.min(maxMs, baseMs * 2 ** n);
      await res.body?.cancel(); // release the connection before waiting
    } catch (error) {
      const retryable = !(error instanceof CircuitOpenError) && !caller?.aborted &&
        (error instanceof BreakerTimeoutError || error instanceof TypeError ||
          isDeadlineReason(error));
      if (n >= retries || !retryable) throw error;
      delay = random() * Math.min(maxMs, baseMs * 2 ** n);
    }
    await wait(delay, caller);
  }
}
