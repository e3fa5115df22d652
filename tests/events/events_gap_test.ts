/**
 * Gap safety of events.read (DESIGN §4.6): a reader that always asks for what
 * follows the highest position it has seen sees every committed event exactly
 * once, even while long and short appending transactions overlap.
 *
 * Everything is driven by explicit steps on dedicated connections (begin, append,
 * hold, commit), never by timers. The naive reader (`where position > $after`)
 * runs beside the real one and is shown to skip an event in the same schedules,
 * so these tests can fail.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import postgres from "npm:postgres@3";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
type Conn = postgres.ReservedSql;

const appendOn = async (conn: Sql | Conn, stream: string, n = 0) =>
  BigInt(
    (await conn`select events.append(${stream}, 'gap.tested', ${conn.json({ n })}) as p`)[0]!.p,
  );

/** The real reader: events.read after its cursor. */
class Reader {
  after = 0n;
  seen: bigint[] = [];
  constructor(private sql: Sql, private prefix: string, private batch = 100) {}
  async poll(): Promise<bigint[]> {
    const rows = await this.sql`select position from events.read(${this.after.toString()},
      ${this.batch}, ${this.prefix})`;
    const got = rows.map((r) => BigInt(r.position));
    for (const p of got) {
      // Never a position at or below one already seen: in order, exactly once.
      assert.ok(p > this.after, `read returned ${p} after having seen ${this.after}`);
      this.after = p;
      this.seen.push(p);
    }
    return got;
  }
  /** Reads until everything committed is settled and seen. */
  async drain(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (true) {
      while ((await this.poll()).length > 0) { /* keep reading */ }
      const [{ pending }] = await this.sql`select exists (select 1 from events.events
        where starts_with(stream, ${this.prefix}) and position > ${this.after.toString()}) as pending`;
      if (!pending) return;
      // Committed but not settled: some transaction (perhaps another database's)
      // older than it is still open. Wait for that, not for a fixed time.
      if (Date.now() > deadline) throw new Error("events never settled");
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The naive reader: position order, no settled bound. */
class NaiveReader {
  after = 0n;
  seen: bigint[] = [];
  constructor(private sql: Sql, private prefix: string) {}
  async poll(): Promise<void> {
    const rows = await this.sql`select position from events.events
      where position > ${this.after.toString()} and starts_with(stream, ${this.prefix})
      order by position`;
    for (const r of rows) {
      this.after = BigInt(r.position);
      this.seen.push(this.after);
    }
  }
}

const committed = async (sql: Sql, prefix: string) =>
  (await sql`select position from events.events where starts_with(stream, ${prefix})
    order by position`).map((r) => BigInt(r.position));

Deno.test("events gap safety: a held transaction's event is read once it commits; the naive reader skips it", async () => {
  await using db = await freshDatabase();
  const sql = postgres(db.url, { max: 6, onnotice: () => {} });
  const long = await sql.reserve();
  try {
    const reader = new Reader(sql, "g-");
    const naive = new NaiveReader(sql, "g-");
    await long`begin`;
    const held = await appendOn(long, "g-long"); // appended, not committed: held
    const quick = [await appendOn(sql, "g-quick-1"), await appendOn(sql, "g-quick-2")];
    assert.ok(held < quick[0]!, "the held transaction's position is the lowest");

    await naive.poll();
    assert.deepEqual(naive.seen, quick, "the naive reader already moved past the held position");
    await reader.poll();
    assert.deepEqual(reader.seen, [], "events.read waits below the held transaction");

    await long`commit`; // the signal: release the held transaction
    await naive.poll();
    await reader.drain();
    assert.deepEqual(reader.seen, [held, ...quick], "every committed event, in position order");
    assert.deepEqual(await committed(sql, "g-"), [held, ...quick]);
    assert.ok(!naive.seen.includes(held), "the naive reader never sees the held event");
  } finally {
    long.release();
    await sql.end();
  }
});

Deno.test("events gap safety: a rolled-back transaction leaves no event and does not stall readers", async () => {
  await using db = await freshDatabase();
  const sql = postgres(db.url, { max: 4, onnotice: () => {} });
  const tx = await sql.reserve();
  try {
    const reader = new Reader(sql, "r-");
    await tx`begin`;
    await appendOn(tx, "r-doomed");
    const after = await appendOn(sql, "r-kept");
    await reader.poll();
    assert.deepEqual(reader.seen, []);
    await tx`rollback`;
    await reader.drain();
    assert.deepEqual(reader.seen, [after]);
  } finally {
    tx.release();
    await sql.end();
  }
});

/** One step of a schedule over four writer connections and one reader. */
type Step =
  | { op: "touch"; slot: number } // the slot's transaction takes its xid (writes elsewhere)
  | { op: "append"; slot: number; count: number } // appends inside the slot's transaction
  | { op: "commit" | "rollback"; slot: number }
  | { op: "quick" } // an append that commits at once
  | { op: "read" };

const SLOTS = 4;
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant("touch" as const), slot: fc.nat(SLOTS - 1) }),
  fc.record({
    op: fc.constant("append" as const),
    slot: fc.nat(SLOTS - 1),
    count: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({
    op: fc.constantFrom("commit" as const, "rollback" as const),
    slot: fc.nat(SLOTS - 1),
  }),
  fc.record({ op: fc.constant("quick" as const) }),
  fc.record({ op: fc.constant("read" as const) }),
);

Deno.test("events gap safety: any interleaving of long and short appenders (fast-check): every committed event once, in order", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.gap_scratch (n int)`; // somewhere to write to take an xid
  const sql = postgres(db.url, { max: SLOTS + 3, onnotice: () => {} });
  const conns: Conn[] = [];
  for (let i = 0; i < SLOTS; i++) conns.push(await sql.reserve());
  let run = 0;
  let naiveMisses = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        async (steps, batch) => {
          const prefix = `run${run++}-`;
          const reader = new Reader(sql, prefix, batch);
          const naive = new NaiveReader(sql, prefix);
          const open = new Array<boolean>(SLOTS).fill(false);
          const txCount = new Array<number>(SLOTS).fill(0);
          let quick = 0;
          const begin = async (slot: number) => {
            if (!open[slot]) {
              await conns[slot]!`begin`;
              open[slot] = true;
              txCount[slot]!++;
            }
          };
          try {
            for (const s of steps) {
              switch (s.op) {
                case "touch":
                  await begin(s.slot);
                  await conns[s.slot]!`insert into public.gap_scratch values (1)`;
                  break;
                case "append":
                  await begin(s.slot);
                  // A stream per transaction: appenders never wait for each other here.
                  for (let i = 0; i < s.count; i++) {
                    await appendOn(conns[s.slot]!, `${prefix}s${s.slot}-t${txCount[s.slot]}`, i);
                  }
                  break;
                case "commit":
                case "rollback":
                  if (open[s.slot]) {
                    await conns[s.slot]!.unsafe(s.op);
                    open[s.slot] = false;
                  }
                  break;
                case "quick":
                  await appendOn(sql, `${prefix}quick-${quick++}`);
                  break;
                case "read":
                  await reader.poll();
                  await naive.poll();
                  break;
              }
            }
          } finally {
            for (let slot = 0; slot < SLOTS; slot++) {
              if (open[slot]) await conns[slot]!`commit`;
            }
          }
          await reader.drain();
          await naive.poll();
          const all = await committed(sql, prefix);
          assert.deepEqual(reader.seen, all, "exactly the committed events, once each, in order");
          if (naive.seen.length < all.length) naiveMisses++;
          // Within each stream, versions arrive in order.
          const rows = await sql`select position, stream, version from events.events
          where starts_with(stream, ${prefix})`;
          const byPosition = new Map(rows.map((r) => [BigInt(r.position), r]));
          const last = new Map<string, number>();
          for (const p of reader.seen) {
            const r = byPosition.get(p)!;
            assert.equal(Number(r.version), (last.get(r.stream) ?? 0) + 1, r.stream);
            last.set(r.stream, Number(r.version));
          }
        },
      ),
      // A fixed seed: the same schedules on every machine.
      { numRuns: 40, seed: 20261124 },
    );
    assert.ok(naiveMisses > 0, "the schedules include ones where the naive reader skips an event");
  } finally {
    for (const c of conns) c.release();
    await sql.end();
  }
});
