/**
 * Helpers for the workflow tests: drive runs with the real worker loop on a real
 * database until they reach a status, and read what was recorded.
 */
import type postgres from "npm:postgres@3";
import {
  createLogger,
  jobRegistry,
  runWorker,
  type WorkflowDefinition,
  workflowRunJob,
  type WorkflowStatus,
  workflowStatus,
} from "../../supabase/functions/_shared/mod.ts";

/** Where the workers stop: a finished run. */
export const FINISHED = ["completed", "failed", "compensated", "compensation_failed", "cancelled"];

/** Quiet logs: tests read state from Postgres, not from log lines. */
export const quiet = createLogger("error");

/** One drain of the queue with these workflows (what a queue-worker invocation does). */
export async function drainOnce(
  sql: postgres.Sql,
  workflows: WorkflowDefinition[],
  options: { leaseMs?: number; signal?: AbortSignal; cancelPollMs?: number } = {},
) {
  const { cancelPollMs, ...worker } = options;
  const registry = jobRegistry([workflowRunJob({ sql, workflows, log: quiet, cancelPollMs })]);
  return await runWorker({ sql, registry, log: quiet, ...worker });
}

/**
 * Drains until every run's status is in `statuses` (default: finished). Sleeps and
 * backoffs schedule jobs a little ahead, so it drains again until then; the
 * deadline only turns a hang into a failure.
 */
export async function driveUntil(
  sql: postgres.Sql,
  workflows: WorkflowDefinition[],
  runIds: number[],
  statuses: string[] = FINISHED,
  deadlineMs = 60_000,
): Promise<WorkflowStatus[]> {
  const deadline = Date.now() + deadlineMs;
  while (true) {
    await drainOnce(sql, workflows);
    const all = await Promise.all(runIds.map((id) => workflowStatus(sql, id)));
    if (all.every((s) => s && statuses.includes(s.status))) return all as WorkflowStatus[];
    if (Date.now() > deadline) {
      throw new Error(`runs did not reach ${statuses.join("/")}: ${JSON.stringify(all)}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A promise the test resolves by hand: gates that hold a step until the test says so. */
export function gate<T = void>() {
  let open!: (v: T) => void;
  const opened = new Promise<T>((r) => open = r);
  return { open, opened };
}
