/** The subscription calls of the SQL API (docs/events.md), typed for the worker. */
import type { Sql, TransactionSql } from "npm:postgres@3";
import type { ConsumerDefinition, EventRecord } from "./subscription.ts";

/** An event handed out by `events.claim_batch`, with its lease. */
export interface ClaimedEvent extends EventRecord {
  /** Deliveries of the stream's first event in this batch (see `attempt` in docs/events.md). */
  attempt: number;
  token: string;
}

type Tx = Sql | TransactionSql;

interface ClaimRow {
  position: string;
  stream: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  version: string;
  created_at: Date;
  attempt: number;
  lease_token: string;
}

/** Creates or updates each subscription (filter); position and state are kept. */
export async function subscribeAll(sql: Sql, defs: readonly ConsumerDefinition[]): Promise<void> {
  for (const d of defs) {
    await sql`select events.subscribe(${d.name}, ${JSON.stringify(d.filter ?? {})}::text::jsonb,
      ${d.startAt ?? "beginning"})`;
  }
}

/** Leases up to `max` events of a subscription, per stream in order. */
export async function claimEvents(
  sql: Sql,
  subscription: string,
  max: number,
  leaseMs: number,
  worker: string,
): Promise<ClaimedEvent[]> {
  const rows = await sql<ClaimRow[]>`
    select "position", stream, type, data, metadata, version, created_at, attempt, lease_token
    from events.claim_batch(${subscription}, ${max}, ${leaseMs / 1000}, ${worker})`;
  return rows.map((r) => ({
    position: String(r.position),
    stream: r.stream,
    type: r.type,
    data: r.data,
    metadata: r.metadata,
    version: Number(r.version),
    createdAt: r.created_at,
    attempt: r.attempt,
    token: r.lease_token,
  }));
}

/** Acknowledges handled events; returns how many the token still held. */
export async function ackEvents(
  sql: Tx,
  subscription: string,
  token: string,
  positions: readonly string[],
): Promise<number> {
  if (positions.length === 0) return 0;
  const [row] = await sql`
    select events.ack(${subscription}, ${token}, ${positions as string[]}::bigint[]) as n`;
  return Number(row!.n);
}

/** The event at `position` failed: redeliver it after `retryAfterMs`, or dead-letter it. */
export async function nackEvent(
  sql: Tx,
  subscription: string,
  token: string,
  position: string,
  error: string,
  dead: boolean,
  retryAfterMs: number,
): Promise<number> {
  const [row] = await sql`
    select events.nack(${subscription}, ${token}, array[${position}]::bigint[], ${error},
      ${dead}, ${retryAfterMs / 1000}) as n`;
  return Number(row!.n);
}

/** Pushes the lease on; false when the token no longer holds anything. */
export async function extendEventLease(
  sql: Sql,
  subscription: string,
  token: string,
  leaseMs: number,
): Promise<boolean> {
  const [row] = await sql`
    select events.extend_lease(${subscription}, ${token}, ${leaseMs / 1000}) as until`;
  return row!.until !== null;
}

/** Hands the token's unhandled events back without counting an attempt. */
export async function releaseEvents(sql: Sql, subscription: string, token: string): Promise<void> {
  await sql`select events.release(${subscription}, ${token})`;
}
