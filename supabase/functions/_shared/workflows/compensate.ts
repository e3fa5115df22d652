/**
 * Sagas: undoes the completed steps of a failed or cancelled run, in reverse
 * order of completion, one at a time. Each compensation has the step's own
 * attempts and backoff; a failed attempt that may be retried suspends the run
 * (status `compensating`) until its next try. A compensation that fails for good
 * ends the run `compensation_failed`, its history kept (workflows.retry resumes it).
 */
import type { Sql } from "npm:postgres@3";
import { describeError, isInstance } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { withTimeout } from "../core/time.ts";
import { PermanentJobError } from "../queue/errors.ts";
import { nextTryAtMs } from "./attempt.ts";
import { STEP_DEFAULTS } from "./definition.ts";
import type { Registration } from "./replay.ts";
import { advanceRun, beginRun, type Fence, recordCompensation } from "./sql.ts";

/** A compensation ran past its step's `timeoutMs`. */
class CompensationTimeoutError extends Error {
  constructor(step: string, ms: number) {
    super(`compensation of step "${step}" timed out after ${ms} ms`);
    this.name = "CompensationTimeoutError";
  }
}

/** Runs the compensations still due, then ends the run (or suspends it for a retry). */
export async function compensateRun(
  sql: Sql,
  fence: Fence,
  registrations: ReadonlyMap<string, Registration>,
  stop: AbortSignal,
  log: Logger,
): Promise<void> {
  const state = await beginRun(sql, fence);
  if (state.state !== "run") return;
  const clockBase = state.nowMs - performance.now();
  const now = () => clockBase + performance.now();
  const due = state.steps
    .filter((s) => s.status === "completed" && s.hasCompensation)
    .sort((a, b) => (b.completedOrder ?? 0) - (a.completedOrder ?? 0));
  for (const row of due) {
    if (row.compensationStatus === "compensated") continue;
    const reg = registrations.get(row.name);
    if (!reg) {
      const error = `step "${row.name}" has no compensate on replay (was it made conditional?)`;
      if (
        await recordCompensation(sql, fence, row.name, "compensation_failed", 0, error, null) !==
          "ok"
      ) return;
      await advanceRun(sql, fence, "compensation_failed", { error });
      return;
    }
    if (
      row.compensationStatus === "retrying" && row.compensationWakeAtMs !== null &&
      row.compensationWakeAtMs > now()
    ) {
      await advanceRun(sql, fence, "compensating", { wakeAtMs: row.compensationWakeAtMs });
      return;
    }
    const attempt = row.compensationAttempts + 1;
    const timeoutMs = reg.options.timeoutMs ?? STEP_DEFAULTS.timeoutMs;
    try {
      await withTimeout(
        () => reg.compensate(row.result),
        timeoutMs,
        () => new CompensationTimeoutError(row.name, timeoutMs),
        stop,
      );
    } catch (failure) {
      if (stop.aborted) throw stop.reason;
      const error = describeError(failure);
      const max = reg.options.maxAttempts ?? STEP_DEFAULTS.maxAttempts;
      log.warn("workflow compensation failed", { step: row.name, attempt, error });
      if (isInstance(failure, PermanentJobError) || attempt >= max) {
        const r = await recordCompensation(
          sql,
          fence,
          row.name,
          "compensation_failed",
          attempt,
          error,
          null,
        );
        if (r !== "ok") return;
        await advanceRun(sql, fence, "compensation_failed", {
          error: `compensation of step "${row.name}" failed: ${error}`,
        });
        return;
      }
      const wakeAtMs = nextTryAtMs(reg.options, attempt, now());
      const r = await recordCompensation(
        sql,
        fence,
        row.name,
        "retrying",
        attempt,
        error,
        wakeAtMs,
      );
      if (r !== "ok") return;
      await advanceRun(sql, fence, "compensating", { wakeAtMs });
      return;
    }
    if (
      await recordCompensation(sql, fence, row.name, "compensated", attempt, null, null) !== "ok"
    ) {
      return;
    }
  }
  const final = state.cancelRequested ? "cancelled" : due.length > 0 ? "compensated" : "failed";
  await advanceRun(sql, fence, final);
}
