/**
 * Typed wrappers for the queue's SQL API (supabase/migrations/*_queue_functions.sql).
 * Each is one statement, set-based: one round trip for a whole batch.
 */
import type { Sql } from "npm:postgres@3";
import type { ClaimedJob } from "./run_job.ts";

/** One failed job for {@link failJobs}. */
export interface FailedJob {
  id: number;
  token: string;
  error: string;
  retryable: boolean;
  reason: string | null;
  /** The tries this job gets (the type's own limit over the SQL column default). */
  maxAttempts: number;
  /** The retry waits between these bounds (drawn in SQL). */
  delayMinMs: number;
  delayMaxMs: number;
}

/** What `queue.fail` did with one job. */
export interface FailResult {
  id: number;
  outcome: "retried" | "dead_lettered";
  /** When a retried job runs again. */
  runAt: Date | null;
  /** Why a dead-lettered job was buried. */
  reason: string | null;
}

/** A claimed job as `queue.ack_and_claim_packed` sends it: a positional array. */
type PackedJob = [
  id: number,
  jobType: string,
  payload: unknown,
  attempts: number,
  maxAttempts: number,
  leaseToken: string,
  traceparent: string | null,
  tracestate: string | null,
];

/**
 * Acknowledges `done` (id/token pairs) and claims up to `maxJobs`, in one round
 * trip. `leaseByType` (`{"<type>": seconds}` as JSON) leases each job for its own
 * type; other types get `leaseSeconds`. The jobs come back as positional arrays
 * (one JSON value for the batch): naming every column of every job cost the
 * database more than the claim itself.
 */
export async function ackAndClaim(
  sql: Sql,
  done: { ids: number[]; tokens: string[] },
  queue: string,
  maxJobs: number,
  leaseSeconds: number,
  worker: string,
  reclaim = true,
  leaseByType: string | null = null,
): Promise<{ acked: number; jobs: ClaimedJob[] }> {
  const [row] = await sql<{ acked: number; jobs: PackedJob[] }[]>`
    select acked, jobs from queue.ack_and_claim_packed(${done.ids}::bigint[],
      ${done.tokens}::uuid[], ${queue}, ${maxJobs}, ${leaseSeconds}, ${worker}, ${reclaim},
      ${leaseByType}::text::jsonb)`;
  const packed = row!.jobs;
  const jobs = new Array<ClaimedJob>(packed.length);
  for (let i = 0; i < packed.length; i++) {
    const p = packed[i]!;
    jobs[i] = {
      id: p[0],
      job_type: p[1],
      payload: p[2],
      attempts: p[3],
      max_attempts: p[4],
      lease_token: p[5],
      traceparent: p[6],
      tracestate: p[7],
    };
  }
  return { acked: row!.acked, jobs };
}

/** Completes id/token pairs; returns how many still held their lease. */
export async function completeJobs(
  sql: Sql,
  done: { ids: number[]; tokens: string[] },
): Promise<number> {
  if (done.ids.length === 0) return 0;
  const [row] = await sql<{ n: number }[]>`
    select queue.complete(${done.ids}::bigint[], ${done.tokens}::uuid[]) as n`;
  return row!.n;
}

/** Fails jobs: retry after a delay, or dead-letter (spent or not retryable). */
export async function failJobs(sql: Sql, jobs: FailedJob[]): Promise<FailResult[]> {
  if (jobs.length === 0) return [];
  const rows = await sql<
    { id: string; outcome: FailResult["outcome"]; run_at: Date | null; reason: string | null }[]
  >`
    select id, outcome, run_at, reason from queue.fail(
      ${jobs.map((j) => j.id)}::bigint[],
      ${jobs.map((j) => j.token)}::uuid[],
      ${jobs.map((j) => j.error)}::text[],
      ${sql.array(jobs.map((j) => j.retryable), 16)}::boolean[],
      ${jobs.map((j) => j.reason)}::text[],
      max_attempts => ${jobs.map((j) => j.maxAttempts)}::int[],
      delay_min_ms => ${jobs.map((j) => Math.round(j.delayMinMs))}::float8[],
      delay_max_ms => ${jobs.map((j) => Math.round(j.delayMaxMs))}::float8[])`;
  return rows.map((r) => ({
    id: Number(r.id),
    outcome: r.outcome,
    runAt: r.run_at,
    reason: r.reason,
  }));
}

/**
 * Hands jobs back without spending an attempt: at once, or (with `delaysMs`,
 * parallel to ids) not before that many milliseconds.
 */
export async function releaseJobs(
  sql: Sql,
  jobs: { ids: number[]; tokens: string[]; delaysMs?: number[] },
): Promise<number> {
  if (jobs.ids.length === 0) return 0;
  const delays = jobs.delaysMs?.map((d) => Math.round(d)) ?? null;
  const [row] = await sql<{ n: number }[]>`
    select queue.release(${jobs.ids}::bigint[], ${jobs.tokens}::uuid[], ${delays}::float8[]) as n`;
  return row!.n;
}

/** Extends one job's lease; false when its token no longer matches. */
export async function extendLease(
  sql: Sql,
  id: number,
  token: string,
  ms: number,
): Promise<boolean> {
  const rows = await sql`
    select id from queue.extend_lease(${[id]}::bigint[], ${[token]}::uuid[], ${ms / 1000})`;
  return rows.length === 1;
}

/** Extends the leases of id/token pairs by `ms`; returns the ids that still held theirs. */
export async function extendLeases(
  sql: Sql,
  jobs: { ids: number[]; tokens: string[] },
  ms: number,
): Promise<Set<number>> {
  if (jobs.ids.length === 0) return new Set();
  const rows = await sql<{ id: string }[]>`
    select id from queue.extend_lease(${jobs.ids}::bigint[], ${jobs.tokens}::uuid[], ${ms / 1000})`;
  return new Set(rows.map((r) => Number(r.id)));
}
