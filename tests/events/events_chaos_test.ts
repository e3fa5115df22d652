/**
 * The events chaos test (the proof): 20,000 events over 200 streams,
 * appended by concurrent writers in transactions of random length; three
 * subscriptions (all events, type "a" only, a projection) driven by worker
 * processes that are killed at points chosen by progress (deliveries counted),
 * and replaced. Then, per subscription: every matching event was delivered;
 * first deliveries kept each stream's order; every duplicate repeats a delivery
 * made by a worker that was later killed; the projection's read model equals a
 * recomputation from the log. Prints the counts.
 */
import assert from "node:assert/strict";
import { appendEvents, sqlState } from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

const CHILD = new URL("./support/events_worker_child.ts", import.meta.url).pathname;
const EVENTS = 20_000;
const STREAMS = 200;
const WRITERS = 4;
const WORKERS = 2;
/** Kill a worker when this many deliveries (over all subscriptions) have been made. */
const KILL_AT = [2_000, 9_000, 18_000, 30_000, 42_000];
/**
 * Live workers' leases: long, so a slow machine never makes a live worker lose one
 * (that would be a duplicate without a kill). A killed worker's leases are expired
 * by the test right after the kill (progress, not time): the takeover of expired
 * leases with new tokens is the path under test; waiting for the clock is not.
 */
const LEASE_MS = 60_000;
/** Events per claim in the workers (larger claims: fewer round trips per event). */
const BATCH = 500;

/** A small seeded PRNG (mulberry32): the same schedule on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Worker {
  id: string;
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  done: Promise<unknown>;
}

/** One delivery as a worker records it (tests/events/support/events_worker_child.ts). */
interface Delivery {
  s: string;
  p: string;
  st: string;
  v: number;
  w: string;
}

const SUBSCRIPTIONS = ["chaos-all", "chaos-a", "chaos-model"] as const;

Deno.test("events chaos: 20,000 events, 200 streams, 3 subscriptions, workers killed by progress", async () => {
  const started = performance.now();
  const phase: Record<string, number> = {};
  const mark = (name: string) => phase[name] = Math.round(performance.now() - started);
  await using db = await freshDatabase();
  await db.sql`create table public.chaos_model (stream text primary key, n int not null,
    last_version bigint not null)`;
  const dir = await Deno.makeTempDir({ prefix: "events-chaos-" });
  const logPath = `${dir}/deliveries.jsonl`;
  await Deno.writeTextFile(logPath, "");
  const seed = Number(Deno.env.get("CHAOS_SEED") ?? 20261124);
  const random = prng(seed);

  // Writers: transactions of 1..12 events on random streams and types (seeded).
  const plan: { stream: string; type: string }[][] = [];
  for (let left = EVENTS; left > 0;) {
    const n = Math.min(left, 1 + Math.floor(random() * 12));
    plan.push(Array.from({ length: n }, () => ({
      stream: `chaos-${Math.floor(random() * STREAMS)}`,
      type: random() < 0.5 ? "a" : "b",
    })));
    left -= n;
  }
  // What each subscription must see, known from the plan: the end is an event (every
  // matching event delivered at least once), not a poll of the lag.
  const expected: Record<string, number> = {
    "chaos-all": EVENTS,
    "chaos-a": plan.flat().filter((e) => e.type === "a").length,
    "chaos-model": EVENTS,
  };
  const firsts: Record<string, Set<string>> = Object.fromEntries(
    SUBSCRIPTIONS.map((s) => [s, new Set<string>()]),
  );
  const allSeen = () => SUBSCRIPTIONS.every((s) => firsts[s]!.size >= expected[s]!);

  let progress = 0;
  let nextKill = 0;
  let workerCount = 0;
  const killed = new Set<string>();
  const live: Worker[] = [];
  const exits: Promise<unknown>[] = [];
  const expiries: Promise<unknown>[] = [];
  let wake = () => {};
  const changed = () => new Promise<void>((r) => wake = r);

  const start = () => {
    const id = `w${++workerCount}`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD, db.url, id, logPath, String(LEASE_MS), String(BATCH)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const done = (async () => {
      // One line per delivery: "<subscription> <position>\n" (the full record is in the log file).
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          const [sub, position] = line.split(" ");
          firsts[sub!]!.add(position!);
          progress++;
        }
        onProgress();
        wake();
      }
      return await child.status;
    })();
    const w = { id, child, stdin: child.stdin.getWriter(), done };
    live.push(w);
    exits.push(done);
  };
  // Kills are driven by progress: the delivery count crossing the next threshold.
  const onProgress = () => {
    while (nextKill < KILL_AT.length && progress >= KILL_AT[nextKill]!) {
      const victim = live.splice(nextKill % live.length, 1)[0]!;
      killed.add(victim.id);
      // Recorded before the signal: anything it delivered is in the log already.
      victim.child.kill("SIGKILL");
      victim.stdin.close().catch(() => {});
      nextKill++;
      start();
      // Once it is dead, its leases run out now rather than in LEASE_MS: the survivors
      // take its streams over with new tokens (acks it had sent still count).
      expiries.push(
        victim.child.status.then(() =>
          db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'
            where locked_by = ${victim.id} and lease_token is not null`
        ),
      );
    }
  };
  for (let i = 0; i < WORKERS; i++) start();

  // Each transaction's appends are pipelined (sent without waiting for each answer),
  // its streams in name order: stream locks taken in one order never deadlock (a
  // deadlock costs deadlock_timeout, 1 s, before Postgres breaks it). A serialization
  // failure (an older transaction appending behind a younger one on a stream) is
  // retried, as docs/events.md says to.
  let retries = 0;
  const writer = async () => {
    for (let planned = plan.shift(); planned; planned = plan.shift()) {
      const tx = planned.toSorted((x, y) => x.stream < y.stream ? -1 : x.stream > y.stream ? 1 : 0);
      for (let attempt = 1;; attempt++) {
        try {
          await db.sql.begin((t) =>
            Promise.all(tx.map((e) => appendEvents(t, e.stream, [{ type: e.type, data: {} }])))
          );
          break;
        } catch (error) {
          const state = sqlState((error as { cause?: unknown }).cause ?? error);
          if ((state === "40001" || state === "40P01") && attempt < 50) {
            retries++;
            continue;
          }
          throw error;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  mark("written");

  // Every matching event delivered at least once, every kill done (a generous deadline
  // only fails the test).
  const deadline = setTimeout(() => wake(), 150_000);
  while (!allSeen() || nextKill < KILL_AT.length) {
    if (performance.now() - started > 150_000) {
      throw new Error(`not delivered: progress ${progress}, kills ${nextKill}`);
    }
    await changed();
  }
  clearTimeout(deadline);
  mark("delivered");
  await Promise.all(expiries);
  // Delivered is not yet acknowledged: a projection records inside its transaction.
  // The workers' last acks follow within a batch.
  const lag = async () => {
    const rows = await db.sql`select events.subscription_status(s.name) as st
      from events.subscriptions s`;
    return rows.reduce((n, r) => n + Number(r.st.lag), 0);
  };
  while (await lag() > 0) await Promise.race([changed(), new Promise((r) => setTimeout(r, 20))]);
  for (const w of live) await w.stdin.close();
  await Promise.all(exits);
  mark("drained");

  // The log, as every check's reference.
  const log = await db.sql<{ position: string; stream: string; type: string; version: string }[]>`
    select "position", stream, type, version from events.events order by "position"`;
  assert.equal(log.length, EVENTS);
  const lines = (await Deno.readTextFile(logPath)).split("\n").filter(Boolean).map((l) =>
    JSON.parse(l) as Delivery
  );
  const counts: Record<string, unknown> = {
    seed,
    writerRetries: retries,
    kills: killed.size,
    deliveries: lines.length,
  };
  for (const sub of SUBSCRIPTIONS) {
    const expectedEvents = log.filter((e) => sub !== "chaos-a" || e.type === "a");
    assert.equal(expectedEvents.length, expected[sub]);
    const first = new Map<string, Delivery>();
    const lastVersion = new Map<string, number>();
    const mine = lines.filter((l) => l.s === sub);
    let duplicates = 0;
    for (const d of mine) {
      const seen = first.get(d.p);
      if (seen) {
        duplicates++;
        // Duplicates only after a kill: the first delivery's worker died before acknowledging.
        assert.ok(killed.has(seen.w), `${sub}: ${d.p} delivered twice, first by live ${seen.w}`);
        continue;
      }
      first.set(d.p, d);
      // First deliveries of a stream come in version order.
      assert.ok((lastVersion.get(d.st) ?? 0) < d.v, `${sub}: ${d.st} v${d.v} out of order`);
      lastVersion.set(d.st, d.v);
    }
    const missing = expectedEvents.filter((e) => !first.has(String(e.position)));
    assert.equal(missing.length, 0, `${sub}: ${missing.length} events never delivered`);
    assert.equal(first.size, expectedEvents.length, `${sub}: delivered events not in the log`);
    counts[sub] = {
      events: expectedEvents.length,
      deliveries: mine.length,
      duplicatesAfterKills: duplicates,
      duplicatesByLiveWorkers: 0,
    };
  }
  const dead = await db.sql`select count(*)::int as n from events.dead_letters`;
  assert.equal(dead[0]!.n, 0);
  // The read model equals a recomputation from the log.
  const model = await db
    .sql`select stream, n, last_version from public.chaos_model order by stream`;
  const recomputed = await db.sql`select stream, count(*)::int as n, max(version) as last_version
    from events.events group by stream order by stream`;
  assert.deepEqual(
    model.map((r) => [r.stream, r.n, Number(r.last_version)]),
    recomputed.map((r) => [r.stream, r.n, Number(r.last_version)]),
  );
  counts.readModel = { streams: model.length, equalsRecomputation: true };
  counts.deadLetters = 0;
  counts.phasesMs = phase;
  console.log("events chaos:", JSON.stringify(counts));
  await Deno.remove(dir, { recursive: true });
});
