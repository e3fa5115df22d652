/**
 * The subscription worker: registers each subscription, then per subscription
 * claims a batch (`events.claim_batch`), delivers each stream's events in order
 * with streams in parallel, and settles the batch: acks, one nack per failed
 * stream (dead-lettered once `attempt` reaches `maxAttempts`), and a release of
 * what the budget or a shutdown stopped (no attempt spent). Leases are extended
 * while a batch runs; a worker whose lease was taken over records nothing.
 *
 * `mode: "drain"` returns when nothing is claimable; `mode: "listen"` waits for
 * NOTIFY `events` (or polls: an event may become readable after its NOTIFY,
 * while an older transaction is still open) until `signal` aborts.
 *
 * @example
 * const summary = await runSubscriptions({ sql, subscriptions: [audit], budgetMs: 50_000 });
 */
import type { Sql } from "npm:postgres@3";
import type { Logger } from "../core/log.ts";
import type { SpanExporter } from "../core/otlp.ts";
import type { Clock } from "../core/time.ts";
import { subscribeAll } from "./sql.ts";
import type { ConsumerDefinition } from "./subscription.ts";
import { SubscriptionLoop, type Wakeup } from "./subscription_loop.ts";

/** Options of {@link runSubscriptions}. */
export interface SubscriptionWorkerOptions {
  sql: Sql;
  subscriptions: readonly ConsumerDefinition[];
  /** Events per claim (default 100). */
  batchSize?: number;
  /** Streams delivered at once per subscription (default 10). */
  concurrency?: number;
  /** Lease per claim, extended while the batch runs (default 30 s). */
  leaseMs?: number;
  budgetMs?: number;
  mode?: "drain" | "listen";
  /** Listen mode: poll this often even without NOTIFY (default 1 s). */
  pollMs?: number;
  signal?: AbortSignal;
  workerId?: string;
  now?: Clock;
  log?: Logger;
  /** Span export: one consumer span per handler call, under the event's trace. */
  spans?: SpanExporter;
}

/** What a run did, over all subscriptions. */
export interface SubscriptionSummary {
  claimed: number;
  /** Acknowledged (projections: applied and acknowledged in one transaction). */
  handled: number;
  retried: number;
  deadLettered: number;
  /** Batches handed back unfinished (budget, shutdown, lost lease). */
  released: number;
  durationMs: number;
}

/** Runs every subscription until drained (or the budget, or `signal`, ends it). */
export async function runSubscriptions(
  options: SubscriptionWorkerOptions,
): Promise<SubscriptionSummary> {
  const now = options.now ?? Date.now;
  const started = now();
  const summary: SubscriptionSummary = {
    claimed: 0,
    handled: 0,
    retried: 0,
    deadLettered: 0,
    released: 0,
    durationMs: 0,
  };
  const stop = new AbortController();
  const onAbort = () => {
    stop.abort(options.signal?.reason);
    wake();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // A tenth of the budget (0.1 .. 2 s) is kept for the last acknowledgements.
  const budget = options.budgetMs ?? Infinity;
  const deadline = started + budget - Math.min(2_000, Math.max(100, budget / 10));
  const budgetTimer = Number.isFinite(deadline)
    ? setTimeout(() => stop.abort(new Error("budget spent")), Math.max(0, deadline - started))
    : undefined;
  // Every notification (and shutdown) counts: a loop that was busy claiming when
  // one came sees the count moved and claims again instead of sleeping through it.
  let waiters: (() => void)[] = [];
  let notifications = 0;
  const wake = () => {
    notifications++;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const wakeup: Wakeup = {
    get count() {
      return notifications;
    },
    idle: (ms, seen) =>
      notifications !== seen ? Promise.resolve() : new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        waiters.push(done);
      }),
  };
  const { sql } = options;
  const listener = options.mode === "listen" ? await sql.listen("events", wake) : null;
  try {
    await subscribeAll(sql, options.subscriptions);
    await Promise.all(
      options.subscriptions.map((def) =>
        new SubscriptionLoop(def, options, summary, stop.signal, deadline, now, wakeup).run()
      ),
    );
  } finally {
    clearTimeout(budgetTimer);
    options.signal?.removeEventListener("abort", onAbort);
    if (listener) await listener.unlisten().catch(() => {});
  }
  summary.durationMs = now() - started;
  return summary;
}
