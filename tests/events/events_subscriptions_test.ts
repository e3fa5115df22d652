/**
 * Subscriptions, checkpoints and retention on real Postgres
 * (supabase/migrations/20261124005001_events_subscriptions.sql).
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import postgres from "npm:postgres@3";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
interface Claimed {
  position: string;
  stream: string;
  type: string;
  version: string;
  attempt: number;
  lease_token: string;
}
interface Status {
  position: number;
  lag: number;
  paused: boolean;
  deadLetters: number;
  leasedStreams: number;
  blockedStreams: number;
}

const append = async (sql: Sql, stream: string, type = "t", data: unknown = {}) =>
  (await sql`select events.append(${stream}, ${type}, ${
    sql.json(data as postgres.JSONValue)
  }) as p`)[0]!
    .p as string;

/** Waits until every committed event is below the settled bound (see events_sql_test.ts). */
async function settled(sql: Sql): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (true) {
    const [{ ok }] = await sql`select not exists (select 1 from events.events
      where position >= events.settled_bound()) as ok`;
    if (ok) return;
    if (Date.now() > deadline) throw new Error("events never settled");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const subscribe = (sql: Sql, name: string, filter: unknown = {}, startAt = "beginning") =>
  sql`select events.subscribe(${name}, ${sql.json(filter as postgres.JSONValue)}, ${startAt})`;
const claim = async (sql: Sql, name: string, n = 100, lease = 30, worker = "w") => {
  await settled(sql);
  return await sql<Claimed[]>`select * from events.claim_batch(${name}, ${n}, ${lease}, ${worker})`;
};
const ack = async (sql: Sql, name: string, token: string, positions: string[]) =>
  (await sql`select events.ack(${name}, ${token}, ${positions}::bigint[]) as n`)[0]!.n as number;
const nack = async (
  sql: Sql,
  name: string,
  token: string,
  positions: string[],
  opts: { dead?: boolean; retryAfter?: number; error?: string } = {},
) =>
  (await sql`select events.nack(${name}, ${token}, ${positions}::bigint[], ${opts.error ?? "boom"},
    ${opts.dead ?? false}, ${opts.retryAfter ?? 0}) as n`)[0]!.n as number;
const status = async (sql: Sql, name: string) => {
  await settled(sql);
  return (await sql`select events.subscription_status(${name}) as s`)[0]!.s as Status;
};
/** Claims and acks everything, returning what was delivered. */
async function drain(sql: Sql, name: string): Promise<Claimed[]> {
  const all: Claimed[] = [];
  while (true) {
    const batch = await claim(sql, name);
    if (batch.length === 0) return all;
    all.push(...batch);
    await ack(sql, name, batch[0]!.lease_token, batch.map((e) => e.position));
  }
}
const positionOf = (events: Claimed[]) => events.map((e) => e.position);

Deno.test("events subscriptions: filter by stream prefix and types; start_at beginning and now", async () => {
  await using db = await freshDatabase();
  const o1 = await append(db.sql, "order-1", "order.placed");
  await append(db.sql, "cart-1", "cart.opened");
  const o2 = await append(db.sql, "order-1", "order.paid");
  await append(db.sql, "order-2", "order.note");
  await subscribe(db.sql, "orders", {
    streamPrefix: "order-",
    types: ["order.placed", "order.paid"],
  });
  const [{ subscribe: created }] = await subscribe(db.sql, "everything");
  assert.deepEqual([created.created, created.position, created.paused], [true, 0, false]);
  await settled(db.sql);
  await subscribe(db.sql, "from-now", {}, "now");
  const later = await append(db.sql, "cart-1", "cart.closed");
  const o3 = await append(db.sql, "order-3", "order.placed");
  assert.deepEqual(positionOf(await drain(db.sql, "orders")), [o1, o2, o3]);
  assert.equal((await drain(db.sql, "everything")).length, 6);
  assert.deepEqual(positionOf(await drain(db.sql, "from-now")), [later, o3]);
  // Subscribing again keeps the position; a new filter applies from the scan on.
  const [{ subscribe: again }] = await subscribe(db.sql, "orders", { streamPrefix: "cart-" });
  assert.equal(again.created, false);
  assert.deepEqual(again.filter, { streamPrefix: "cart-" });
  assert.ok(Number(again.position) > 0);
  assert.equal((await drain(db.sql, "orders")).length, 0);
  assert.equal((await status(db.sql, "orders")).lag, 0);
});

Deno.test("events subscriptions: bad arguments are 22023, unknown subscriptions P0002", async () => {
  await using db = await freshDatabase();
  const bad = [
    "select events.subscribe('', '{}')",
    "select events.subscribe('has space', '{}')",
    "select events.subscribe('x', '[]')",
    "select events.subscribe('x', '{\"prefix\": \"a\"}')",
    "select events.subscribe('x', '{\"streamPrefix\": 1}')",
    "select events.subscribe('x', '{\"streamPrefix\": \"\"}')",
    "select events.subscribe('x', '{\"types\": \"a\"}')",
    "select events.subscribe('x', '{\"types\": []}')",
    "select events.subscribe('x', '{\"types\": [1]}')",
    "select events.subscribe('x', '{}', 'yesterday')",
    "select * from events.claim_batch('x', 0)",
    "select events.set_checkpoint('p', -1)",
  ];
  await db.sql`select events.subscribe('ok')`;
  for (const statement of bad) {
    const s = statement.replace("claim_batch('x'", "claim_batch('ok'");
    await assert.rejects(db.sql.unsafe(s), (e: { code?: string }) => e.code === "22023", s);
  }
  for (
    const statement of [
      "select * from events.claim_batch('nope')",
      "select events.subscription_status('nope')",
      "select events.pause('nope')",
      "select events.replay('nope', 1::bigint)",
      "select events.ack('nope', gen_random_uuid(), '{1}')",
    ]
  ) {
    await assert.rejects(
      db.sql.unsafe(statement),
      (e: { code?: string }) => e.code === "P0002",
      statement,
    );
  }
});

Deno.test("events subscriptions: claim, ack, status: position and lag; the position never passes an unacked event", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const a1 = await append(db.sql, "a", "t");
  const b1 = await append(db.sql, "b", "t");
  const a2 = await append(db.sql, "a", "t");
  let st = await status(db.sql, "s");
  assert.deepEqual([st.position, st.lag, st.paused, st.deadLetters], [0, 3, false, 0]);
  const batch = await claim(db.sql, "s");
  assert.deepEqual(positionOf(batch), [a1, b1, a2]);
  assert.ok(batch.every((e) => e.attempt === 1 && e.lease_token === batch[0]!.lease_token));
  assert.equal((await status(db.sql, "s")).leasedStreams, 2);
  // Stream b done first: the position stays below a's unacked a1.
  assert.equal(await ack(db.sql, "s", batch[0]!.lease_token, [b1]), 1);
  st = await status(db.sql, "s");
  assert.ok(BigInt(st.position) < BigInt(a1), `${st.position} < ${a1}`);
  assert.equal(st.lag, 2);
  // Acking a2 before a1 acks nothing: a stream is handled in order.
  assert.equal(await ack(db.sql, "s", batch[0]!.lease_token, [a2]), 0);
  assert.equal(await ack(db.sql, "s", batch[0]!.lease_token, [a1]), 1);
  st = await status(db.sql, "s");
  assert.ok(BigInt(st.position) >= BigInt(a1) && BigInt(st.position) < BigInt(a2));
  assert.equal(await ack(db.sql, "s", batch[0]!.lease_token, [a2]), 1);
  st = await status(db.sql, "s");
  assert.ok(BigInt(st.position) >= BigInt(a2));
  assert.deepEqual([st.lag, st.leasedStreams], [0, 0]);
  assert.equal((await claim(db.sql, "s")).length, 0);
  const [{ n }] = await db.sql`select count(*)::int as n from events.subscription_streams`;
  assert.equal(n, 0, "no per-stream state is left once everything is handled");
});

Deno.test("events subscriptions: a stream's next events wait while its earlier batch is leased", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const a = [await append(db.sql, "a"), await append(db.sql, "a"), await append(db.sql, "a")];
  const b = [await append(db.sql, "b")];
  const first = await claim(db.sql, "s", 1);
  assert.deepEqual(positionOf(first), [a[0]]);
  const second = await claim(db.sql, "s", 10);
  assert.deepEqual(positionOf(second), b, "stream a is leased: only b flows");
  assert.equal((await claim(db.sql, "s", 10)).length, 0);
  await ack(db.sql, "s", first[0]!.lease_token, [a[0]!]);
  assert.deepEqual(positionOf(await claim(db.sql, "s", 10)), [a[1], a[2]]);
});

Deno.test("events subscriptions: two concurrent claimers never hold the same stream and see each stream in order", async () => {
  await using db = await freshDatabase();
  const streams = ["s0", "s1", "s2", "s3", "s4"];
  for (let round = 0; round < 8; round++) {
    await db.sql`select * from events.append_many(${streams[round % 5]!},
      ${db.sql.json([{ type: "t", data: { round } }, { type: "t", data: { round } }])})`;
    for (const s of streams) await append(db.sql, s, "t", { round });
  }
  await subscribe(db.sql, "par");
  await settled(db.sql);
  const sql = postgres(db.url, { max: 4, onnotice: () => {} });
  const holder = new Map<string, string>(); // stream -> worker holding it
  const delivered = new Map<string, number[]>();
  const worker = async (name: string) => {
    let idle = 0;
    while (idle < 3) {
      const batch = await sql<Claimed[]>`select * from events.claim_batch('par', 4, 30, ${name})`;
      if (batch.length === 0) {
        idle++;
        continue;
      }
      idle = 0;
      for (const stream of new Set(batch.map((e) => e.stream))) {
        assert.ok(
          !holder.has(stream),
          `${stream} handed to ${name} while ${holder.get(stream)} holds it`,
        );
        holder.set(stream, name);
      }
      for (const e of batch) {
        const seen = delivered.get(e.stream) ?? [];
        assert.equal(Number(e.version), seen.length + 1, `${e.stream} in order, once`);
        delivered.set(e.stream, [...seen, Number(e.version)]);
      }
      // Let the other worker claim while this batch is held.
      await sql`select pg_sleep(0)`;
      for (const stream of new Set(batch.map((e) => e.stream))) holder.delete(stream);
      const acked = await sql`select events.ack('par', ${batch[0]!.lease_token},
        ${batch.map((e) => e.position)}::bigint[]) as n`;
      assert.equal(acked[0]!.n, batch.length);
    }
  };
  try {
    await Promise.all([worker("w1"), worker("w2")]);
  } finally {
    await sql.end();
  }
  const [{ n }] = await db.sql`select count(*)::int as n from events.events`;
  assert.equal([...delivered.values()].flat().length, n, "every event delivered once");
  assert.equal((await status(db.sql, "par")).lag, 0);
});

Deno.test("events subscriptions: an expired lease is reclaimed with a new token; the stale token changes nothing", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const p = await append(db.sql, "a");
  const first = await claim(db.sql, "s", 10, 30);
  assert.equal((await claim(db.sql, "s")).length, 0, "leased");
  await db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'`;
  const second = await claim(db.sql, "s", 10, 30);
  assert.deepEqual(positionOf(second), [p]);
  assert.equal(second[0]!.attempt, 2);
  assert.notEqual(second[0]!.lease_token, first[0]!.lease_token);
  assert.equal(await ack(db.sql, "s", first[0]!.lease_token, [p]), 0);
  assert.equal(await nack(db.sql, "s", first[0]!.lease_token, [p], { dead: true }), 0);
  const [{ until }] = await db.sql`select events.extend_lease('s', ${
    first[0]!.lease_token
  }, 60) as until`;
  assert.equal(until, null);
  assert.equal((await status(db.sql, "s")).deadLetters, 0);
  assert.equal(await ack(db.sql, "s", second[0]!.lease_token, [p]), 1);
  assert.equal((await status(db.sql, "s")).lag, 0);
});

Deno.test("events subscriptions: nack retries the failed event (after a delay) and counts attempts; release does not", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const a = [await append(db.sql, "a"), await append(db.sql, "a")];
  const b = await append(db.sql, "b");
  let batch = await claim(db.sql, "s");
  // a[0] handled, a[1] failed: a[0] counts as done, a[1] comes back.
  assert.equal(await nack(db.sql, "s", batch[0]!.lease_token, [a[1]!]), 1);
  await ack(db.sql, "s", batch[0]!.lease_token, [b]);
  batch = await claim(db.sql, "s");
  assert.deepEqual(positionOf(batch), [a[1]]);
  assert.equal(batch[0]!.attempt, 2);
  // A delay keeps it back; other streams are not held up.
  await nack(db.sql, "s", batch[0]!.lease_token, [a[1]!], { retryAfter: 3600 });
  const c = await append(db.sql, "c");
  assert.deepEqual(positionOf(await claim(db.sql, "s")).slice(-1), [c]);
  await db.sql`update events.subscription_streams set retry_at = now() where stream = 'a'`;
  batch = await claim(db.sql, "s");
  assert.deepEqual(positionOf(batch), [a[1]]);
  assert.equal(batch[0]!.attempt, 3);
  const [{ last_error }] = await db
    .sql`select last_error from events.subscription_streams where stream = 'a'`;
  assert.equal(last_error, "boom");
  // release: handed back without spending the attempt.
  const [{ n }] = await db.sql`select events.release('s', ${batch[0]!.lease_token}) as n`;
  assert.equal(n, 1);
  batch = await claim(db.sql, "s");
  assert.equal(batch[0]!.attempt, 3);
});

Deno.test("events subscriptions: a dead letter blocks only its own stream, until retried or discarded", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const a = [await append(db.sql, "a", "t", { n: 1 }), await append(db.sql, "a", "t", { n: 2 })];
  const b1 = await append(db.sql, "b");
  let batch = await claim(db.sql, "s", 1);
  assert.deepEqual(positionOf(batch), [a[0]]);
  await nack(db.sql, "s", batch[0]!.lease_token, [a[0]!], { dead: true, error: "poison" });
  const b2 = await append(db.sql, "b");
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [b1, b2], "stream b keeps flowing");
  let st = await status(db.sql, "s");
  assert.deepEqual([st.deadLetters, st.blockedStreams, st.lag], [1, 1, 2]);
  assert.ok(BigInt(st.position) < BigInt(a[0]!), "the position waits below the dead letter");
  const [dl] = await db.sql`select * from events.dead_letters`;
  assert.deepEqual([dl!.position, dl!.stream, dl!.data.n, dl!.error, dl!.attempts], [
    a[0],
    "a",
    1,
    "poison",
    1,
  ]);
  // Retention keeps what the subscription has not passed.
  await db.sql`select events.prune(9223372036854775807::bigint)`;
  const [{ kept }] = await db
    .sql`select count(*)::int as kept from events.events where stream = 'a'`;
  assert.equal(kept, 2);

  // Retry: the dead letter comes again, then the stream continues.
  assert.equal((await db.sql`select events.retry_dead_letter('s', ${a[0]!}) as ok`)[0]!.ok, true);
  batch = await claim(db.sql, "s");
  assert.deepEqual(positionOf(batch), a);
  assert.equal(batch[0]!.attempt, 1);
  await nack(db.sql, "s", batch[0]!.lease_token, [a[0]!], { dead: true });
  // Discard: the stream moves past it.
  assert.equal((await db.sql`select events.discard_dead_letter('s', ${a[0]!}) as ok`)[0]!.ok, true);
  assert.equal(
    (await db.sql`select events.discard_dead_letter('s', ${a[0]!}) as ok`)[0]!.ok,
    false,
  );
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [a[1]]);
  st = await status(db.sql, "s");
  assert.deepEqual([st.deadLetters, st.blockedStreams, st.lag], [0, 0, 0]);
  assert.ok(BigInt(st.position) >= BigInt(b2));
});

Deno.test("events subscriptions: pause, resume and replay from a position and from a time", async () => {
  await using db = await freshDatabase();
  await subscribe(db.sql, "s");
  const p1 = await append(db.sql, "a");
  const [{ t }] = await db.sql`select clock_timestamp() as t`;
  const p2 = await append(db.sql, "b");
  const p3 = await append(db.sql, "a");
  await db.sql`select events.pause('s')`;
  assert.equal((await claim(db.sql, "s")).length, 0);
  assert.equal((await status(db.sql, "s")).paused, true);
  await db.sql`select events.resume('s')`;
  const leased = await claim(db.sql, "s", 1);
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p2], "a is leased, b flows");
  await ack(db.sql, "s", leased[0]!.lease_token, [p1]);
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p3]);

  await db.sql`select events.replay('s', ${p2}::bigint)`;
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p2, p3]);
  await db.sql`select events.replay('s', ${t as Date}::timestamptz)`;
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p2, p3]);
  await db.sql`select events.replay('s', 0::bigint)`;
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p1, p2, p3]);
  // A replay drops leases: the old token acks nothing.
  await db.sql`select events.replay('s', ${p2}::bigint)`;
  const held = await claim(db.sql, "s");
  await db.sql`select events.replay('s', ${p3}::bigint)`;
  assert.equal(await ack(db.sql, "s", held[0]!.lease_token, positionOf(held)), 0);
  assert.deepEqual(positionOf(await drain(db.sql, "s")), [p3]);
});

Deno.test("events subscriptions: prune deletes only what every subscription and checkpoint has passed", async () => {
  await using db = await freshDatabase();
  const p = [await append(db.sql, "a"), await append(db.sql, "b"), await append(db.sql, "c")];
  await subscribe(db.sql, "slow");
  await subscribe(db.sql, "fast");
  await drain(db.sql, "fast");
  const max = "9223372036854775807";
  const prune = async (before = max) =>
    Number((await db.sql`select events.prune(${before}::bigint) as n`)[0]!.n);
  assert.equal(await prune(), 0, "slow has passed nothing");
  const first = await claim(db.sql, "slow", 1);
  await ack(db.sql, "slow", first[0]!.lease_token, [p[0]!]);
  assert.equal(await prune(), 1);
  await drain(db.sql, "slow");
  await db.sql`select events.set_checkpoint('projection', ${p[1]!})`;
  assert.equal(await prune(), 1, "the checkpoint keeps c");
  await db.sql`select events.set_checkpoint('projection', ${p[2]!})`;
  assert.equal(
    Number((await db.sql`select events.prune(interval '1 hour') as n`)[0]!.n),
    0,
    "too young",
  );
  assert.equal(Number((await db.sql`select events.prune(interval '0 s') as n`)[0]!.n), 1);
  // Versions go on after pruning.
  await append(db.sql, "a");
  const [{ version }] = await db.sql`select version from events.events where stream = 'a'`;
  assert.equal(version, "2");
});

Deno.test("events checkpoints: set in the read model's transaction, with optimistic concurrency", async () => {
  await using db = await freshDatabase();
  assert.equal((await db.sql`select events.checkpoint('proj') as c`)[0]!.c, "0");
  await db.sql`select events.set_checkpoint('proj', 10, 0)`;
  await db.sql`select events.set_checkpoint('proj', 20, 10)`;
  await assert.rejects(
    db.sql`select events.set_checkpoint('proj', 30, 10)`,
    (e: Error & { code?: string }) => e.code === "P0409" && /at 20, expected 10/.test(e.message),
  );
  await assert.rejects(db.sql.begin(async (tx) => {
    await tx`select events.set_checkpoint('proj', 40, 20)`;
    throw new Error("the read model write failed");
  }));
  assert.equal((await db.sql`select events.checkpoint('proj') as c`)[0]!.c, "20");
  await db.sql`select events.set_checkpoint('proj', 5)`; // no expectation: a reset
  assert.equal((await db.sql`select events.checkpoint('proj') as c`)[0]!.c, "5");
});

/** Random work for one subscription: every event is eventually handled once per ack. */
type Op =
  | { op: "append"; stream: number }
  | { op: "claim"; n: number }
  | { op: "ack" | "nack" | "dead" | "expire" | "release"; pick: number };

Deno.test("events subscriptions (fast-check): the position never passes an unhandled event; all handled in stream order", async () => {
  await using db = await freshDatabase();
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant("append" as const), stream: fc.nat(3) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("claim" as const),
        n: fc.integer({ min: 1, max: 4 }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constantFrom(
          "ack" as const,
          "nack" as const,
          "dead" as const,
          "expire" as const,
          "release" as const,
        ),
        pick: fc.nat(10),
      }),
    },
  );
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const sub = `p${run++}`;
      const prefix = `${sub}-`;
      await db.sql`select events.subscribe(${sub}, ${db.sql.json({ streamPrefix: prefix })})`;
      const handled = new Map<string, string>(); // position -> stream, acked (handled)
      const lastVersion = new Map<string, number>();
      let batches: Claimed[][] = [];
      const check = async () => {
        const st = await status(db.sql, sub);
        const unhandled = await db.sql`select position from events.events
          where starts_with(stream, ${prefix}) and position <= ${st.position}`;
        for (const r of unhandled) {
          const dead = await db.sql`select 1 from events.dead_letters
            where subscription = ${sub} and position = ${r.position}`;
          assert.ok(
            handled.has(r.position) || dead.length > 0,
            `position ${st.position} passed unhandled ${r.position}`,
          );
        }
      };
      const onAck = (events: Claimed[]) => {
        for (const e of events) {
          handled.set(e.position, e.stream);
          // Acked in stream order: versions only go up (a replay-free run).
          assert.ok(
            Number(e.version) > (lastVersion.get(e.stream) ?? 0),
            `${e.stream} v${e.version}`,
          );
          lastVersion.set(e.stream, Number(e.version));
        }
      };
      for (const o of ops) {
        if (o.op === "append") {
          await append(db.sql, `${prefix}${o.stream}`);
        } else if (o.op === "claim") {
          const batch = await claim(db.sql, sub, o.n);
          if (batch.length) batches.push(batch);
        } else if (batches.length > 0) {
          const batch = batches[o.pick % batches.length]!;
          batches = batches.filter((b) => b !== batch);
          const token = batch[0]!.lease_token;
          if (o.op === "ack") {
            const n = await ack(db.sql, sub, token, positionOf(batch));
            if (n === batch.length) onAck(batch);
            else assert.equal(n, 0, "a batch is acked whole or (stale token) not at all");
          } else if (o.op === "expire") {
            await db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'
              where subscription = ${sub} and lease_token = ${token}`;
          } else if (o.op === "release") {
            await db.sql`select events.release(${sub}, ${token})`;
          } else {
            // The first event of the batch failed.
            await nack(db.sql, sub, token, [batch[0]!.position], { dead: o.op === "dead" });
          }
        }
        await check();
      }
      // Settle: discard dead letters, then drain; every event is handled.
      for (const b of batches) await db.sql`select events.release(${sub}, ${b[0]!.lease_token})`;
      while (true) {
        const dls = await db
          .sql`select position from events.dead_letters where subscription = ${sub}`;
        for (const d of dls) {
          await db.sql`select events.discard_dead_letter(${sub}, ${d.position})`;
          handled.set(d.position, "dead");
        }
        await db
          .sql`update events.subscription_streams set retry_at = null where subscription = ${sub}`;
        const batch = await claim(db.sql, sub);
        if (batch.length === 0 && dls.length === 0) break;
        if (batch.length) {
          await ack(db.sql, sub, batch[0]!.lease_token, positionOf(batch));
          onAck(batch);
        }
        await check();
      }
      const all = await db
        .sql`select position from events.events where starts_with(stream, ${prefix})`;
      assert.deepEqual(all.map((r) => r.position).filter((p) => !handled.has(p)), []);
      const st = await status(db.sql, sub);
      assert.deepEqual([st.lag, st.deadLetters, st.blockedStreams], [0, 0, 0]);
    }),
    { numRuns: 40, seed: 4242 },
  );
});
