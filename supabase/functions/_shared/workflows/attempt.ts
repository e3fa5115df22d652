/**
 * One attempt of a step: runs its function under the step's timeout with a
 * signal that also aborts when the worker must stop or the run is cancelled,
 * and classifies what happened. It writes nothing; the replay records the
 * outcome under the fence.
 */
import { describeError, isInstance } from "../core/errors.ts";
import { withTimeout } from "../core/time.ts";
import { PermanentJobError } from "../queue/errors.ts";
import { retryWindow } from "../queue/retry_policy.ts";
import { STEP_DEFAULTS, type StepOptions, type StepRunContext } from "./definition.ts";
import { StepResultError, StepTimeoutError } from "./errors.ts";
import { toJsonResult } from "./json_result.ts";

/** What one attempt came to. */
export type AttemptOutcome =
  /** The function returned plain JSON (the value is its JSON round trip). */
  | { kind: "completed"; value: unknown }
  /** It threw, timed out, or returned something that is not JSON. */
  | { kind: "failed"; error: string; permanent: boolean }
  /** It failed after the run was cancelled: recorded as such, never retried. */
  | { kind: "cancelled"; error: string }
  /** The worker must stop: nothing is recorded, a later invocation runs it again. */
  | { kind: "stopped" };

/** Signals an attempt watches: the worker's stop, and the run's cancellation. */
export interface AttemptSignals {
  stop: AbortSignal;
  cancelled: AbortSignal;
  /** Both: what the step's own signal follows besides its timeout. */
  either: AbortSignal;
}

/** Runs attempt `attempt` of step `name` of run `runId`. */
export async function runAttempt<T>(
  runId: number,
  name: string,
  fn: (ctx: StepRunContext) => Promise<T> | T,
  options: StepOptions<T>,
  attempt: number,
  signals: AttemptSignals,
): Promise<AttemptOutcome> {
  const timeoutMs = options.timeoutMs ?? STEP_DEFAULTS.timeoutMs;
  const idempotencyKey = `${runId}:${name}`;
  let failure: unknown;
  try {
    const value = await withTimeout(
      (signal) => fn({ signal, idempotencyKey, attempt }),
      timeoutMs,
      () => new StepTimeoutError(name, timeoutMs),
      signals.either,
    );
    if (signals.stop.aborted) return { kind: "stopped" };
    const json = toJsonResult(value);
    if (json.ok) return { kind: "completed", value: json.value };
    failure = new StepResultError(name, json.reason);
  } catch (error) {
    failure = error;
  }
  if (signals.stop.aborted) return { kind: "stopped" };
  const error = describeError(failure);
  if (signals.cancelled.aborted) {
    return { kind: "cancelled", error: `the run was cancelled while the step ran: ${error}` };
  }
  const permanent = isInstance(failure, PermanentJobError) ||
    isInstance(failure, StepResultError);
  return { kind: "failed", error, permanent };
}

/** When the next attempt after failed attempt `attempt` may run (full jitter in its window). */
export function nextTryAtMs(options: StepOptions<unknown>, attempt: number, nowMs: number): number {
  const window = retryWindow(options.backoff ?? STEP_DEFAULTS.backoff, attempt);
  return nowMs + window.minMs + Math.random() * (window.maxMs - window.minMs);
}
