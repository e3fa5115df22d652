/**
 * bench:events' stand-in for a subscription worker: the minimal loop a worker
 * runs on the SQL API (docs/events.md "Subscriptions"), used to measure append ->
 * handler latency until the TypeScript subscription runner is on main. Swap it
 * for the runner by giving `startWorker` another implementation of `WorkerStart`
 * (bench/workers/events_ours.ts picks it in one place and prints which one ran).
 *
 * The loop: LISTEN on the `events` channel (events._append notifies at commit),
 * then claim_batch -> handle each event in position order -> ack, back to back
 * while claims return events. NOTIFY fires at commit, but an event is only
 * claimable once every older transaction in the cluster has ended (the settled
 * bound, docs/events.md "Gap safety"), so a claim right after a notification can
 * come back empty: the loop then polls again after 1, 2, 4, ... ms (a notification
 * resets that), and falls back to one poll per `pollMs` when idle.
 */
import type postgres from "npm:postgres@3";

/** One delivered event (the claim_batch columns the bench uses). */
export interface DeliveredEvent {
  position: string;
  stream: string;
  type: string;
  data: Record<string, unknown>;
  version: string;
  attempt: number;
}

export interface WorkerOptions {
  /** A pool for claims and acks; LISTEN takes a connection of its own. */
  sql: postgres.Sql;
  subscription: string;
  handler: (event: DeliveredEvent) => void | Promise<void>;
  /** claim_batch max_count. */
  batchSize: number;
  leaseSeconds?: number;
  /** Poll interval without notifications. */
  pollMs?: number;
  worker?: string;
}

export interface RunningWorker {
  /** What runs, for the report. */
  readonly describe: string;
  /** Counters for the report, if the worker keeps any. */
  stats?(): Record<string, number>;
  /** Stops after the current batch; resolves when the loop has ended. */
  stop(): Promise<void>;
}

export type WorkerStart = (options: WorkerOptions) => Promise<RunningWorker>;

/** The minimal LISTEN + claim_batch + ack loop. */
export const startMinimalWorker: WorkerStart = async (options) => {
  const { sql, subscription, handler, batchSize } = options;
  const leaseSeconds = options.leaseSeconds ?? 30;
  const pollMs = options.pollMs ?? 1_000;
  const worker = options.worker ?? "bench";
  let stopped = false;
  // Set by every notification; read and cleared when a claim starts.
  let notified = false;
  let wake: (() => void) | null = null;
  const listener = await sql.listen("events", () => {
    notified = true;
    wake?.();
  });
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const counts = { claims: 0, emptyClaims: 0, repolls: 0 };
  const loop = (async () => {
    let backoff = 0; // 0: idle, wait for a notification (or pollMs)
    while (!stopped) {
      const hinted = notified; // something committed since the last claim began
      notified = false;
      const rows = await sql<(DeliveredEvent & { lease_token: string })[]>`
        select position, stream, type, data, version, attempt, lease_token
        from events.claim_batch(${subscription}, ${batchSize}, ${leaseSeconds}, ${worker})`;
      counts.claims++;
      if (rows.length > 0) {
        backoff = 0;
        for (const row of rows) await handler(row);
        await sql`select events.ack(${subscription}, ${rows[0]!.lease_token}::uuid,
          ${rows.map((r) => r.position)}::bigint[])`;
        continue;
      }
      counts.emptyClaims++;
      if (hinted || notified || backoff > 0) {
        // Committed but maybe not claimable yet (an older transaction is still open).
        counts.repolls++;
        backoff = hinted || notified ? 1 : backoff * 2;
        if (backoff >= pollMs) backoff = 0;
        await pause(backoff || pollMs);
      } else {
        await pause(pollMs);
      }
    }
  })();

  return {
    describe: "the bench's minimal loop (bench/workers/events_loop.ts): LISTEN events + " +
      `claim_batch(${batchSize}) + handler + ack, re-poll at 1, 2, 4 ... ms after a ` +
      "notification while the event is not yet claimable",
    stats: () => ({ ...counts }),
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await listener.unlisten();
    },
  };
};
