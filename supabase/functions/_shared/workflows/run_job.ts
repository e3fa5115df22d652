/**
 * The queue job type that drives runs: `workflow.run` with payload `{ runId }`.
 * `workflows.start` enqueues it; each invocation advances the run and hands the
 * job back (to run at the next wake time) or removes it when the run ends.
 */
import type { Sql } from "npm:postgres@3";
import { z } from "npm:zod@4";
import { createLogger, type Logger } from "../core/log.ts";
import { defineJob, type JobDefinition } from "../queue/job.ts";
import { CANCEL_POLL_MS, CancelWatch } from "./cancel_watch.ts";
import { type WorkflowDefinition, workflowRegistry } from "./definition.ts";
import { runInvocation } from "./engine.ts";

/** The job type name (the SQL side enqueues the same). */
export const WORKFLOW_JOB_TYPE = "workflow.run";

/** Options of {@link workflowRunJob}. */
export interface WorkflowRunJobOptions {
  sql: Sql;
  workflows: readonly WorkflowDefinition[];
  log?: Logger;
  /** One invocation's limit; a run needing longer continues in the next (default 30 s). */
  timeoutMs?: number;
  /**
   * While invocations run, how often the worker looks for cancelled runs to abort
   * their running steps (default {@link CANCEL_POLL_MS}; see cancel_watch.ts).
   */
  cancelPollMs?: number;
}

/** The `workflow.run` job type for the given workflows. */
export function workflowRunJob(options: WorkflowRunJobOptions): JobDefinition {
  const registry = workflowRegistry(options.workflows);
  const log = options.log ?? createLogger("info", { component: "workflows" });
  const cancels = new CancelWatch(options.sql, options.cancelPollMs ?? CANCEL_POLL_MS, log);
  return defineJob({
    type: WORKFLOW_JOB_TYPE,
    schema: z.object({ runId: z.number().int().positive() }),
    // Attempts count invocations that crashed; every recorded advance resets them.
    maxAttempts: 100,
    timeoutMs: options.timeoutMs ?? 30_000,
    backoff: { baseMs: 100, maxMs: 5_000 },
    handler: ({ runId }, ctx) =>
      runInvocation(
        options.sql,
        registry,
        { runId, jobId: ctx.id, token: ctx.leaseToken },
        ctx.signal,
        log,
        cancels,
      ),
  });
}
