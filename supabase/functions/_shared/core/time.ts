/**
 * Timeout signals that cost almost nothing per call.
 *
 * `AbortSignal.timeout()` or a `setTimeout` per call costs ~1.5 µs here, ten
 * times a whole closed-breaker call. Instead, calls whose deadlines fall in the
 * same `resolutionMs` slot share one controller and one timer, so a signal
 * aborts between `timeoutMs` and `timeoutMs + resolutionMs` after the call
 * started, like `AbortSignal.timeout(timeoutMs)` rounded up.
 */

/** The abort reason of a deadline signal; recognise it with {@link isDeadlineReason}. */
export class DeadlineExceeded extends Error {
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

  constructor(resolutionMs = 10) {
    this.resolutionMs = resolutionMs;
  }

  /**
   * A signal that aborts with {@link DeadlineExceeded} about `timeoutMs` after
   * `now` (epoch ms; callers pass the clock reading they already hold, since a
   * clock read costs as much as the rest of this method). The timer itself is
   * real time: `at - now` is always in [timeoutMs, timeoutMs + resolutionMs).
   */
  signal(timeoutMs: number, now: number = Date.now()): AbortSignal {
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
