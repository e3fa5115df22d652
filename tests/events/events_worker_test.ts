/**
 * The subscription worker (`runSubscriptions`) on real Postgres: handlers that
 * throw any value or hang, projections that fail halfway through a batch, a
 * worker killed mid-batch, two workers on one subscription, and a projection
 * whose lease was taken over.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import {
  appendEvents,
  type ConsumerDefinition,
  defineProjection,
  defineSubscription,
  describeError,
  type EventRecord,
  runSubscriptions,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
const CHILD = new URL("./support/events_worker_child.ts", import.meta.url).pathname;
const quiet = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child() {
    return quiet;
  },
};
const noDelay = () => 0;

async function appendAll(sql: Sql, streams: Record<string, number>): Promise<void> {
  for (const [stream, n] of Object.entries(streams)) {
    await appendEvents(
      sql,
      stream,
      Array.from({ length: n }, (_, i) => ({ type: i % 2 ? "b" : "a", data: { i: i + 1 } })),
    );
  }
}

/** Drains until a run makes no progress (retries are immediate with retryDelayMs 0). */
async function drain(sql: Sql, subscriptions: ConsumerDefinition[], extra = {}) {
  const total = { claimed: 0, handled: 0, retried: 0, deadLettered: 0, released: 0 };
  // A generous deadline that only fails the test (a worker that never drains would hang it).
  const signal = AbortSignal.timeout(30_000);
  for (let round = 0; round < 100 && !signal.aborted; round++) {
    const s = await runSubscriptions({
      sql,
      subscriptions,
      log: quiet as never,
      signal,
      ...extra,
    });
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += s[k];
    if (s.claimed === 0) return total;
  }
  throw new Error("drain did not finish (100 rounds or 30 s)");
}

const status = async (sql: Sql, name: string) =>
  (await sql`select events.subscription_status(${name}) as s`)[0]!.s as {
    position: number;
    lag: number;
    deadLetters: number;
    blockedStreams: number;
  };

Deno.test("events worker: a handler throwing any value is retried, then dead-lettered; only its stream waits", async () => {
  await using db = await freshDatabase();
  const circular: Record<string, unknown> = { name: "circ" };
  circular.self = circular;
  const hostile = new Proxy({}, {
    get() {
      throw new Error("trap");
    },
    getPrototypeOf() {
      throw new Error("trap");
    },
  });
  const thrown: unknown[] = [
    undefined,
    null,
    Symbol("sym"),
    42n,
    "",
    circular,
    hostile,
    Object.create(null),
    new Error("plain"),
  ];
  const streams: Record<string, number> = { "ok-1": 4, "ok-2": 4 };
  thrown.forEach((_, i) => streams[`bad-${i}`] = 4);
  await appendAll(db.sql, streams);
  const seen: string[] = [];
  const sub = defineSubscription({
    name: "throws",
    maxAttempts: 3,
    retryDelayMs: noDelay,
    handler: (e: EventRecord) => {
      seen.push(`${e.stream}:${e.version}`);
      const m = /^bad-(\d+)$/.exec(e.stream);
      // Each bad stream's second event always fails, with its own kind of value.
      if (m && e.version === 2) throw thrown[Number(m[1])];
    },
  });
  const total = await drain(db.sql, [sub]);
  assert.equal(total.deadLettered, thrown.length);
  assert.equal(total.retried, thrown.length * 2);
  const dead = await db.sql`select stream, version, attempts, error from events.dead_letters
    where subscription = 'throws' order by stream`;
  assert.equal(dead.length, thrown.length);
  for (const d of dead) {
    const i = Number(/\d+$/.exec(d.stream)![0]);
    assert.equal(Number(d.version), 2);
    assert.equal(d.attempts, 3);
    assert.equal(d.error, describeError(thrown[i]), d.stream);
  }
  // Good streams completed; each bad stream delivered v1 once, v2 three times, never v3.
  for (const s of ["ok-1", "ok-2"]) {
    assert.deepEqual(
      seen.filter((x) => x.startsWith(s + ":")),
      [1, 2, 3, 4].map((v) => `${s}:${v}`),
    );
  }
  for (let i = 0; i < thrown.length; i++) {
    assert.deepEqual(seen.filter((x) => x.startsWith(`bad-${i}:`)), [
      `bad-${i}:1`,
      `bad-${i}:2`,
      `bad-${i}:2`,
      `bad-${i}:2`,
    ]);
  }
  const st = await status(db.sql, "throws");
  assert.equal(st.blockedStreams, thrown.length);
  assert.equal(st.lag, thrown.length * 3); // v2..v4 of each bad stream
  // Discarding the dead letter lets the stream move on.
  await db.sql`select events.discard_dead_letter('throws', "position")
    from events.dead_letters where stream = 'bad-0'`;
  await drain(db.sql, [sub]);
  assert.deepEqual(seen.filter((x) => x.startsWith("bad-0:")).slice(-2), ["bad-0:3", "bad-0:4"]);
});

Deno.test("events worker: a hanging handler times out, its signal aborts, and the event is redelivered", async () => {
  await using db = await freshDatabase();
  await appendAll(db.sql, { "slow-1": 2, "fast-1": 2 });
  const attempts: number[] = [];
  let aborted: unknown = null;
  const sub = defineSubscription({
    name: "hangs",
    timeoutMs: 200,
    retryDelayMs: noDelay,
    handler: (e, { attempt, signal }) => {
      if (e.stream !== "slow-1" || e.version !== 1) return;
      attempts.push(attempt);
      if (attempt > 1) return;
      signal.addEventListener("abort", () => aborted = signal.reason);
      return new Promise(() => {}); // never settles
    },
  });
  const total = await drain(db.sql, [sub]);
  assert.deepEqual(attempts, [1, 2]);
  assert.match(String(aborted), /did not finish within 200 ms/);
  assert.equal(total.retried, 1);
  assert.equal(total.handled, 4);
  assert.equal((await status(db.sql, "hangs")).lag, 0);
});

Deno.test("events worker: a projection failing halfway through a batch keeps read model and checkpoint consistent", async () => {
  await using db = await freshDatabase();
  await db
    .sql`create table public.model (stream text primary key, n int not null, last_version int)`;
  await appendAll(db.sql, { "p-1": 6, "p-2": 6, "p-3": 6 });
  let flaky = true;
  const projection = defineProjection({
    name: "model",
    maxAttempts: 2,
    retryDelayMs: noDelay,
    apply: async (tx, e) => {
      await tx`insert into public.model as m values (${e.stream}, 1, ${e.version})
        on conflict (stream) do update set n = m.n + 1, last_version = excluded.last_version`;
      // p-1 v3 always fails (after its write: the rollback must undo it); p-2 v4 fails once.
      if (e.stream === "p-1" && e.version === 3) throw new Error("poisoned");
      if (e.stream === "p-2" && e.version === 4 && flaky) {
        flaky = false;
        throw new Error("transient");
      }
    },
  });
  const total = await drain(db.sql, [projection]);
  assert.equal(total.deadLettered, 1);
  assert.equal(total.retried, 2); // p-1 v3 once, p-2 v4 once
  const model = await db.sql`select stream, n, last_version from public.model order by stream`;
  // Each applied event counted once: p-1 up to v2, the others complete.
  assert.deepEqual(model.map((r) => [r.stream, r.n, r.last_version]), [
    ["p-1", 2, 2],
    ["p-2", 6, 6],
    ["p-3", 6, 6],
  ]);
  // The checkpoint stays below the dead letter; nothing handled is above it unrecorded.
  const [dl] = await db
    .sql`select "position" from events.dead_letters where subscription = 'model'`;
  const st = await status(db.sql, "model");
  assert.ok(BigInt(st.position) < BigInt(dl!.position));
  assert.equal(st.lag, 4); // p-1 v3..v6
});

Deno.test("events worker: two workers on one subscription never handle a stream at the same time", async () => {
  await using db = await freshDatabase();
  const streams: Record<string, number> = {};
  for (let i = 0; i < 20; i++) streams[`two-${i}`] = 15;
  await appendAll(db.sql, streams);
  const inFlight = new Map<string, string>();
  const violations: string[] = [];
  const handled: string[] = [];
  const worker = (id: string, sql: Sql) =>
    defineSubscription({
      name: "two",
      handler: async (e) => {
        const other = inFlight.get(e.stream);
        if (other) violations.push(`${e.stream} v${e.version}: ${id} while ${other}`);
        inFlight.set(e.stream, id);
        // A round trip, so the other worker's claims and handlers interleave with this one.
        await sql`select 1`;
        inFlight.delete(e.stream);
        handled.push(`${e.stream}:${e.version}`);
      },
    });
  const sqlB = postgres(db.url, { max: 4, onnotice: () => {} });
  try {
    await Promise.all([
      drain(db.sql, [worker("A", db.sql)], { batchSize: 7, workerId: "A", concurrency: 4 }),
      drain(sqlB, [worker("B", sqlB)], { batchSize: 7, workerId: "B", concurrency: 4 }),
    ]);
  } finally {
    await sqlB.end();
  }
  assert.deepEqual(violations, []);
  // Live leases: nothing was handled twice, and everything once.
  assert.equal(handled.length, 300);
  assert.equal(new Set(handled).size, 300);
});

Deno.test("events worker: a projection whose lease was taken over rolls back; each event counts once", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.model (stream text primary key, n int not null)`;
  await appendAll(db.sql, { "l-1": 3 });
  const write = (tx: postgres.TransactionSql, e: EventRecord) =>
    tx`insert into public.model as m values (${e.stream}, 1)
      on conflict (stream) do update set n = m.n + 1`;
  let entered!: () => void;
  const inside = new Promise<void>((r) => entered = r);
  let open!: () => void;
  const gate = new Promise<void>((r) => open = r);
  const slow = defineProjection({
    name: "fenced",
    apply: async (tx, e) => {
      if (e.version === 1) {
        entered();
        await gate; // held before any write: the other worker must not wait on our locks
      }
      await write(tx, e);
    },
  });
  const fast = defineProjection({ name: "fenced", apply: write });
  const sqlA = postgres(db.url, { max: 2, onnotice: () => {} });
  try {
    const a = runSubscriptions({ sql: sqlA, subscriptions: [slow], log: quiet as never });
    await inside;
    // The lease runs out (set by hand: no waiting on a clock), and worker B takes the stream over.
    await db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'
      where subscription = 'fenced'`;
    const b = await runSubscriptions({ sql: db.sql, subscriptions: [fast], log: quiet as never });
    assert.equal(b.handled, 3);
    open();
    const summaryA = await a;
    assert.equal(summaryA.handled, 0);
  } finally {
    await sqlA.end();
  }
  assert.deepEqual((await db.sql`select n from public.model`).map((r) => r.n), [3]);
});

Deno.test("events worker: a worker killed mid-batch; its events come again and the position never passes them", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.chaos_model (stream text primary key, n int not null,
    last_version bigint not null)`;
  const streams: Record<string, number> = {};
  for (let i = 0; i < 10; i++) streams[`k-${i}`] = 60;
  await appendAll(db.sql, streams);
  const dir = await Deno.makeTempDir({ prefix: "events-kill-" });
  const logPath = `${dir}/deliveries.jsonl`;
  // A long lease: after the kill its streams stay held until the test expires them.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, db.url, "victim", logPath, "600000"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let progress = 0;
  for await (const chunk of child.stdout) {
    progress += chunk.filter((b) => b === 10).length; // one line per delivery
    // Killed by progress: once it has made 150 deliveries, mid-batch (batches are 100 events).
    if (progress >= 150) {
      child.kill("SIGKILL");
      break;
    }
  }
  await child.status;
  await child.stdin.close().catch(() => {});
  const delivered = new Set(
    (await Deno.readTextFile(logPath)).split("\n").filter(Boolean).map((l) => JSON.parse(l))
      .filter((d) => d.s === "chaos-all").map((d) => d.p as string),
  );
  const log = await db.sql`select "position" from events.events order by "position"`;
  const firstUnhandled = log.find((e) => !delivered.has(String(e.position)));
  const before = await status(db.sql, "chaos-all");
  if (firstUnhandled) assert.ok(BigInt(before.position) < BigInt(firstUnhandled.position));
  // Its leases expire (by hand); another worker redelivers what was not acknowledged.
  await db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'`;
  const again: string[] = [];
  await drain(db.sql, [
    defineSubscription({ name: "chaos-all", handler: (e) => void again.push(e.position) }),
  ]);
  const union = new Set([...delivered, ...again]);
  assert.equal(union.size, 600);
  // Every redelivery repeats an event the killed worker had delivered but not acknowledged, or
  // is one it never got to: nothing it acknowledged comes again.
  const acked = before.position;
  for (const p of again) assert.ok(BigInt(p) > BigInt(acked) || !delivered.has(p));
  assert.equal((await status(db.sql, "chaos-all")).lag, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("events worker: a projection rebuilt from history into a new table, then swapped behind a view", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.counts_v1 (stream text primary key, n int not null)`;
  await db.sql`create table public.counts_v2 (stream text primary key, n int not null)`;
  await db.sql`create view public.counts as select * from public.counts_v1`;
  const into = (table: string) => (tx: postgres.TransactionSql, e: EventRecord) =>
    tx.unsafe(
      `insert into public.${table} as m values ($1, 1) on conflict (stream) do update set n = m.n + 1`,
      [e.stream],
    );
  const v1 = defineProjection({ name: "counts", apply: into("counts_v1") });
  await appendAll(db.sql, { "r-1": 3, "r-2": 2 });
  await drain(db.sql, [v1]);
  // v2 starts from the beginning while v1 keeps serving and new events arrive.
  const v2 = defineProjection({
    name: "counts-v2",
    startAt: "beginning",
    apply: into("counts_v2"),
  });
  await appendAll(db.sql, { "r-3": 4 });
  await drain(db.sql, [v1, v2]);
  assert.equal((await status(db.sql, "counts-v2")).lag, 0);
  const read = async (table: string) =>
    (await db.sql.unsafe(`select stream, n from public.${table} order by stream`)).map((r) => [
      r.stream,
      r.n,
    ]);
  assert.deepEqual(await read("counts_v2"), await read("counts_v1"));
  await db.sql`create or replace view public.counts as select * from public.counts_v2`;
  await db.sql`select events.unsubscribe('counts')`;
  assert.deepEqual(await read("counts"), [["r-1", 3], ["r-2", 2], ["r-3", 4]]);
});
