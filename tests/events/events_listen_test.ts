/**
 * The subscription runner's listen mode (`runSubscriptions({ mode: "listen" })`)
 * is driven by NOTIFY, not by its poll: here the poll interval is an hour, so
 * every event below is delivered because a notification (or the re-poll after
 * one) woke the runner. A notification that arrives while the runner is busy
 * claiming must not be slept through; an event that is notified but not yet
 * claimable (an older transaction still open keeps it above the settled bound)
 * is picked up once that transaction ends.
 */
import assert from "node:assert/strict";
import {
  defineSubscription,
  type EventRecord,
  runSubscriptions,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase, type TestDatabase } from "../_harness/database.ts";

const HOUR = 3_600_000;
const quiet = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet };

/** Resolves with `p`, or fails the test after a generous deadline (never a timing assertion). */
function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not handled within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A listening runner whose handler resolves the promise registered for `data.k`. */
async function listening(db: TestDatabase) {
  await db.sql`select events.subscribe('live', '{}', 'now')`;
  const waiting = new Map<number, (e: EventRecord) => void>();
  const stop = new AbortController();
  const running = runSubscriptions({
    sql: db.sql,
    subscriptions: [
      defineSubscription({
        name: "live",
        handler: (e) => waiting.get(e.data.k as number)?.(e),
      }),
    ],
    mode: "listen",
    pollMs: HOUR,
    signal: stop.signal,
    log: quiet as never,
  });
  return {
    handled: (k: number) => new Promise<EventRecord>((r) => waiting.set(k, r)),
    async stop() {
      stop.abort();
      return await running;
    },
  };
}

Deno.test("events listen: each commit wakes the runner, also while it is busy claiming", async () => {
  await using db = await freshDatabase();
  const runner = await listening(db);
  try {
    // Each append follows its predecessor's handler call at once: its NOTIFY lands
    // while the runner acknowledges and claims again, the race a lost wake-up loses.
    for (let k = 0; k < 150; k++) {
      const handled = runner.handled(k);
      await db.sql`select events.append(${`s-${k % 7}`}, 't', ${db.sql.json({ k })})`;
      await within(handled, `event ${k}`);
    }
  } finally {
    const summary = await runner.stop();
    assert.equal(summary.handled, 150);
  }
});

Deno.test("events listen: a notified event held back by an older open transaction comes once it ends", async () => {
  await using db = await freshDatabase();
  const runner = await listening(db);
  const holder = await db.sql.reserve();
  try {
    const first = runner.handled(0);
    await db.sql`select events.append('s', 't', ${db.sql.json({ k: 0 })})`;
    await within(first, "event 0");
    // An older transaction with an xid: every later event stays above the settled bound.
    await holder`begin`;
    await holder`select pg_current_xact_id()`;
    const claims = async () =>
      (await db.sql`select xmin::text as v from events.subscriptions where name = 'live'`)[0]!.v;
    const before = await claims();
    const held = runner.handled(1);
    await db.sql`select events.append('s', 't', ${db.sql.json({ k: 1 })})`;
    // Progress, not time: wait until the runner has claimed after that NOTIFY (each claim
    // rewrites the subscription's row) and found nothing it may hand out.
    for (let i = 0; (await claims()) === before; i++) {
      if (i > 3_000) throw new Error("the runner never claimed after the notification");
      await new Promise((r) => setTimeout(r, 5));
    }
    // Ending the holder notifies nobody: only the runner's re-poll can find event 1.
    await holder`commit`;
    const e = await within(held, "event 1 after the older transaction ended");
    assert.equal(e.data.k, 1);
  } finally {
    await holder`rollback`.catch(() => {});
    holder.release();
    await runner.stop();
  }
});
