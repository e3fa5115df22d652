/**
 * The worker's off-the-happy-path writes and their log lines: failures (one
 * line per retried or dead-lettered job, with the error text) and jobs handed
 * back without spending an attempt (deferred, or released because the budget or
 * a shutdown stopped them). Kept apart from the loop, which stays about claims.
 */
import type { Sql } from "npm:postgres@3";
import type { Logger } from "../core/log.ts";
import { parseTraceparent } from "../core/trace.ts";
import { type FailedJob, type FailResult, releaseJobs } from "./sql.ts";
import type { ClaimedJob, HandBackReason } from "./run_job.ts";

/** A job going back to the queue without spending its attempt. */
export interface HandBack {
  job: ClaimedJob;
  why: HandBackReason | "deferred";
  delayMs: number;
  /** What stopped it, if it started. */
  error: string | null;
}

/** The trace a job was enqueued under, for its log lines (nothing for untraced jobs). */
export function jobTraceFields(job: ClaimedJob): { traceId?: string; parentSpanId?: string } {
  const parent = parseTraceparent(job.traceparent);
  return parent ? { traceId: parent.traceId, parentSpanId: parent.parentId } : {};
}

/** One line per job `queue.fail` retried or buried: id, type, attempt, reason, error. */
export function logFailures(
  log: Logger,
  failed: readonly (FailedJob & { job: ClaimedJob })[],
  results: readonly FailResult[],
): void {
  const byId = new Map(failed.map((f) => [f.id, f]));
  for (const r of results) {
    const f = byId.get(r.id);
    if (!f) continue;
    const fields = {
      jobId: f.id,
      jobType: f.job.job_type,
      attempt: f.job.attempts,
      maxAttempts: f.maxAttempts,
      ...jobTraceFields(f.job),
      error: f.error,
    };
    if (r.outcome === "retried") {
      log.warn("job failed, retrying", { ...fields, runAt: r.runAt?.toISOString() ?? null });
    } else {
      log.error("job dead-lettered", { ...fields, reason: r.reason });
    }
  }
}

/** Releases `jobs` (deferred ones with their delay) and logs why each went back. */
export async function handBackJobs(
  sql: Sql,
  log: Logger,
  jobs: readonly HandBack[],
): Promise<{ released: number; deferred: number }> {
  const now = jobs.filter((h) => h.why !== "deferred");
  const later = jobs.filter((h) => h.why === "deferred");
  const released = await releaseJobs(sql, {
    ids: now.map((h) => h.job.id),
    tokens: now.map((h) => h.job.lease_token),
  });
  const deferred = await releaseJobs(sql, {
    ids: later.map((h) => h.job.id),
    tokens: later.map((h) => h.job.lease_token),
    delaysMs: later.map((h) => h.delayMs),
  });
  const unstarted = new Map<string, number[]>();
  for (const h of jobs) {
    if (h.error === null) {
      // Never started: one line per reason, not per job (a budget may leave hundreds).
      unstarted.set(h.why, [...(unstarted.get(h.why) ?? []), h.job.id]);
      continue;
    }
    log.info(
      h.why === "deferred" ? "job deferred, attempt not spent" : "job cut off, handed back",
      {
        jobId: h.job.id,
        jobType: h.job.job_type,
        attempt: h.job.attempts,
        ...jobTraceFields(h.job),
        reason: h.why,
        ...(h.why === "deferred" ? { delayMs: h.delayMs } : {}),
        error: h.error,
      },
    );
  }
  for (const [reason, ids] of unstarted) {
    log.info("jobs not started, handed back", {
      reason,
      count: ids.length,
      jobIds: ids.slice(0, 20),
    });
  }
  return { released, deferred };
}
