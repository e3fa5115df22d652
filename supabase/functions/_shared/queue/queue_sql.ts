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
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Outcome counts of {@link failJobs}. */
export interface FailCounts {
  retried: number;
  deadLettered: number;
}

/** Acknowledges `done` (id/token pairs) and claims up to `maxJobs`, in one round trip. */
export async function ackAndClaim(
  sql: Sql,
  done: { ids: number[]; tokens: string[] },
  queue: string,
  maxJobs: number,
  leaseSeconds: number,
  worker: string,
  reclaim = true,
): Promise<{ acked: number; jobs: ClaimedJob[] }> {
  const [row] = await sql<{ acked: number; jobs: ClaimedJob[] }[]>`
    select acked, jobs from queue.ack_and_claim(${done.ids}::bigint[], ${done.tokens}::uuid[],
      ${queue}, ${maxJobs}, ${leaseSeconds}, ${worker}, ${reclaim})`;
  return row!;
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

/** Fails jobs: retry with backoff, or dead-letter (spent or not retryable). */
export async function failJobs(sql: Sql, jobs: FailedJob[]): Promise<FailCounts> {
  if (jobs.length === 0) return { retried: 0, deadLettered: 0 };
  const rows = await sql<{ outcome: string }[]>`
    select outcome from queue.fail(
      ${jobs.map((j) => j.id)}::bigint[],
      ${jobs.map((j) => j.token)}::uuid[],
      ${jobs.map((j) => j.error)}::text[],
      ${sql.array(jobs.map((j) => j.retryable), 16)}::boolean[],
      ${jobs.map((j) => j.reason)}::text[],
      ${jobs.map((j) => Math.round(j.backoffBaseMs))}::int[],
      ${jobs.map((j) => Math.round(j.backoffMaxMs))}::int[])`;
  const dead = rows.filter((r) => r.outcome === "dead_lettered").length;
  return { retried: rows.length - dead, deadLettered: dead };
}

/** Hands unstarted jobs back without spending an attempt. */
export async function releaseJobs(
  sql: Sql,
  jobs: { ids: number[]; tokens: string[] },
): Promise<number> {
  if (jobs.ids.length === 0) return 0;
  const [row] = await sql<{ n: number }[]>`
    select queue.release(${jobs.ids}::bigint[], ${jobs.tokens}::uuid[]) as n`;
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
