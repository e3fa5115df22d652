/**
 * Time: the clock type every module injects, and the timeout and abort helpers
 * (sleep, abortable, withTimeout, deadline signals), in one place.
 *
 * Deadline signals cost almost nothing per call. `AbortSignal.timeout()` or a
 * `setTimeout` per call costs ~1.5 µs here, ten times a whole closed-breaker
 * call. Instead, calls whose deadlines fall in the same `resolutionMs` slot share
 * one controller and one timer, so a signal aborts between `timeoutMs` and
 * `timeoutMs + resolutionMs` after the call started, like
 * `AbortSignal.timeout(timeoutMs)` rounded up.
 */
import { safeGet } from "./errors.ts";

/** Epoch milliseconds; injected everywhere so tests can drive time. */
export type Clock = () => number;

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Rejects with the signal's reason when it aborts: a call that hangs must not stall its caller. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Runs `fn` with a signal that aborts after `ms` (with `onTimeout()`'s value as
 * reason), or when `parent` aborts (with the parent's reason). The result
 * rejects with the timeout's reason if `fn` has not settled by then, even when
 * `fn` ignores its signal; a parent abort only aborts the signal (`fn` decides
 * how to end). A synchronous result is returned without starting a timer (a
 * timer per call is a measurable cost for tiny jobs). The timer is a plain,
 * ref'd one: what it guards is awaited, so it must keep the isolate alive.
 */
export async function withTimeout<T>(
  fn: (signal: AbortSignal) => T | PromiseLike<T>,
  ms: number,
  onTimeout: () => unknown,
  parent?: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  if (parent?.aborted) controller.abort(parent.reason);
  const result = fn(controller.signal);
  // Only objects and functions can be thenables. Reading `then` off undefined
  // throws, and a thrown-and-caught TypeError per call was the worker's largest
  // JS cost for handlers that return nothing (profile of a 20,000-job drain).
  if (result === null || (typeof result !== "object" && typeof result !== "function")) {
    return result as T;
  }
  if (typeof safeGet(result, "then") !== "function") return result as T;
  const onParentAbort = () => controller.abort(parent!.reason);
  parent?.addEventListener("abort", onParentAbort, { once: true });
  const running = Promise.resolve(result);
  // A hung call may settle after we gave up on it; that must not be unhandled.
  running.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const reason = onTimeout();
          reject(reason);
          controller.abort(reason);
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  }
}

/** The abort reason of a deadline signal; recognise it with {@link isDeadlineReason}. */
class DeadlineExceeded extends Error {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`deadline of ${timeoutMs} ms exceeded`);
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** True when `reason` is the abort reason set by a deadline signal. */
export function isDeadlineReason(reason: unknown): reason is DeadlineExceeded {
  return reason instanceof DeadlineExceeded;
}

interface Slot {
  at: number;
  controller: AbortController;
}

const unref: (id: number) => void = typeof Deno !== "undefined" && "unrefTimer" in Deno
  ? (id) => Deno.unrefTimer(id)
  : () => {};

/** Hands out shared deadline signals; one instance per process is enough. */
export class DeadlineSignals {
  readonly resolutionMs: number;
  /** The most recent slot per timeout value: the fast path is one map lookup. */
  readonly #latest = new Map<number, Slot>();
  readonly #now: Clock;

  constructor(resolutionMs = 10, now: Clock = Date.now) {
    this.resolutionMs = resolutionMs;
    this.#now = now;
  }

  /**
   * A signal that aborts with {@link DeadlineExceeded} about `timeoutMs` after
   * `now` (epoch ms; callers pass the clock reading they already hold, since a
   * clock read costs as much as the rest of this method). The timer itself is
   * real time: `at - now` is always in [timeoutMs, timeoutMs + resolutionMs).
   */
  signal(timeoutMs: number, now: number = this.#now()): AbortSignal {
    const res = this.resolutionMs;
    const at = Math.ceil((now + timeoutMs) / res) * res;
    const latest = this.#latest.get(timeoutMs);
    if (latest !== undefined && latest.at === at && !latest.controller.signal.aborted) {
      return latest.controller.signal;
    }
    const slot: Slot = { at, controller: new AbortController() };
    this.#latest.set(timeoutMs, slot);
    const id = setTimeout(() => {
      slot.controller.abort(new DeadlineExceeded(timeoutMs));
      if (this.#latest.get(timeoutMs) === slot) this.#latest.delete(timeoutMs);
    }, at - now);
    // A pending deadline must not keep a finished script alive; the I/O it
    // guards keeps the event loop running while it matters.
    unref(id as unknown as number);
    return slot.controller.signal;
  }
}

/** The process-wide instance breakers and outbound calls use by default. */
export const deadlines: DeadlineSignals = new DeadlineSignals();
