/**
 * One invocation of a run, driven by a claimed `workflow.run` job: load the run
 * under the job's fence, replay the workflow, then record what happened (done,
 * suspended, failed and compensated). It returns normally only when the run's job
 * was moved in SQL (or the lease is gone); otherwise it throws, so the queue
 * hands the job back and a later invocation replays.
 */
import type { Sql } from "npm:postgres@3";
import { describeError } from "../core/errors.ts";
import { plainPath } from "../core/json_pointer.ts";
import type { Logger } from "../core/log.ts";
import type { WorkflowRegistry } from "./definition.ts";
import type { CancelWatch } from "./cancel_watch.ts";
import { compensateRun } from "./compensate.ts";
import { toJsonResult } from "./json_result.ts";
import { Replay } from "./replay.ts";
import { advanceRun, beginRun, type Fence } from "./sql.ts";

/** The worker stopped (budget, shutdown) mid-invocation: the job goes back. */
export class InvocationStoppedError extends Error {
  constructor(cause: unknown) {
    super("the workflow invocation was stopped before it could record its outcome", { cause });
    this.name = "InvocationStoppedError";
  }
}

/** Advances run `fence.runId` as far as it can in this invocation. */
export async function runInvocation(
  sql: Sql,
  registry: WorkflowRegistry,
  fence: Fence,
  stop: AbortSignal,
  baseLog: Logger,
  cancels?: CancelWatch,
): Promise<void> {
  const state = await beginRun(sql, fence);
  if (state.state !== "run") return;
  const def = registry.get(state.workflow);
  if (!def) {
    await advanceRun(sql, fence, "failed", {
      error: `unknown workflow "${state.workflow}": this worker does not define it`,
    });
    return;
  }
  const parsed = def.input.safeParse(state.input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${plainPath(i.path)}: ${i.message}`);
    await advanceRun(sql, fence, "failed", { error: `invalid input: ${issues.join("; ")}` });
    return;
  }
  const log = baseLog.child({
    runId: fence.runId,
    workflow: state.workflow,
    ...(state.traceparent ? { traceparent: state.traceparent } : {}),
  });
  const compensating = state.status === "compensating" || state.cancelRequested;
  // Forward replays watch for a cancel, which aborts their running steps' signals.
  const watch = compensating ? undefined : cancels?.watch(fence.runId);
  const replay = new Replay({
    sql,
    fence,
    state,
    mode: compensating ? "compensate" : "forward",
    stop,
    cancelled: watch?.signal,
    log,
  });
  let end;
  try {
    end = await replay.drive(() => def.run(parsed.data, replay));
  } finally {
    watch?.release();
  }
  if (stop.aborted) throw new InvocationStoppedError(stop.reason);
  if (replay.halt === "write_failed") throw replay.writeError;
  if (replay.halt === "lease_lost") return;
  if (replay.fatal) {
    await advanceRun(sql, fence, compensating ? "compensation_failed" : "failed", {
      error: describeError(replay.fatal),
    });
    return;
  }
  let error: string | null = state.cancelRequested ? "cancelled" : null;
  if (!compensating && replay.halt !== "cancelled") {
    if (end.kind === "halted") {
      const s = replay.suspension;
      if (!s) throw new Error("workflow invocation halted without a reason"); // a bug: retried
      await advanceRun(sql, fence, s.status, { wakeAtMs: s.wakeAtMs, events: s.events });
      return;
    }
    if (end.kind === "returned") {
      const json = toJsonResult(end.value);
      if (json.ok) {
        await advanceRun(sql, fence, "completed", { output: json.value });
        return;
      }
      error = `the workflow's output ${json.reason}`;
    } else {
      error = describeError(end.error);
    }
  }
  if (replay.halt === "cancelled") error = "cancelled";
  if (state.status !== "compensating") {
    if (await advanceRun(sql, fence, "compensating", { error }) !== "ok") return;
  }
  log.info("workflow compensating", { error });
  await compensateRun(sql, fence, replay.compensations, stop, log);
  if (stop.aborted) throw new InvocationStoppedError(stop.reason);
}
