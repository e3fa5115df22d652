/**
 * Limits that keep one bad job from stopping a queue
 * (supabase/migrations/20261124003100_queue_limits.sql): the payload limit at
 * every way in, the byte-bounded claim, oversized rows dead-lettered instead of
 * wedging the claim, finite run_at, and stats() over rows with infinite run_at.
 * Oversized rows are written straight into queue.jobs, as rows from before the
 * limit (or from a direct insert) would be.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import type postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  defineJob,
  enqueue,
  enqueueMany,
  MAX_PAYLOAD_BYTES,
  PayloadTooLargeError,
  QueueOptionsError,
} from "../../supabase/functions/_shared/mod.ts";

type Sql = postgres.Sql;
const MiB = 1024 * 1024;

/** A payload whose JSON text, as Postgres prints it (`{"p": "..."}`), is exactly `bytes` long. */
const sized = (bytes: number) => ({ p: "x".repeat(bytes - 9) });

/** Inserts a row of `bytes` of payload text straight into the table, bypassing enqueue. */
const insertRaw = (sql: Sql, bytes: number, priority = 1, count = 1) =>
  sql`insert into queue.jobs (job_type, payload, priority)
    select 'big', jsonb_build_object('p', repeat('x', ${bytes - 9}::int)), ${priority}
    from generate_series(1, ${count})`;

const claimIds = async (sql: Sql, n = 100) =>
  (await sql<{ id: string }[]>`select id from queue.claim('default', ${n}, 30, 'test')`)
    .map((r) => r.id);

const count = async (sql: Sql, table: "jobs" | "dead_letters") =>
  (await sql.unsafe(`select count(*)::int as n from queue.${table}`))[0]!.n as number;

const code = (e: unknown) => (e as { code?: string }).code;

Deno.test("queue limits: the limits are what the docs and TypeScript say", async () => {
  await using db = await freshDatabase();
  const [row] = await db.sql`select queue.max_payload_bytes() as p, queue.max_claim_bytes() as c`;
  assert.equal(row!.p, MAX_PAYLOAD_BYTES);
  assert.equal(row!.c, 8 * MiB);
});

Deno.test("queue limits: huge rows never wedge the queue; small jobs behind them run", async () => {
  // The case (six 50 MB rows; twenty of 14 MB did the same): the batch
  // exceeded Postgres' 256 MB jsonb limit inside ack_and_claim, so every claim of
  // the queue failed for good. Sizes around the limit are the next test's table.
  for (const [n, mb] of [[6, 50]] as const) {
    await using db = await freshDatabase();
    await insertRaw(db.sql, mb * MiB, 1, n);
    const small = await db.sql`select id from queue.enqueue_many(${
      db.sql.json([{ job_type: "small" }, { job_type: "small" }])
    })`;
    const [got] = await db.sql<{ jobs: { id: number; job_type: string }[] }[]>`
      select jobs from queue.ack_and_claim('{}', '{}', 'default', 100)`;
    assert.deepEqual(
      got!.jobs.map((j) => String(j.id)),
      small.map((r) => r.id),
      `${n} x ${mb} MB: the small jobs are claimed in the first call`,
    );
    const dead = await db.sql`select reason, last_error, attempts, errors,
      octet_length(payload ->> 'p') as len from queue.dead_letters`;
    assert.equal(dead.length, n);
    for (const d of dead) {
      assert.equal(d.reason, "payload_too_large");
      assert.match(d.last_error, new RegExp(`${mb * MiB} bytes.*limit of ${MAX_PAYLOAD_BYTES}`));
      assert.equal(d.len, mb * MiB - 9, "the payload is kept whole");
      assert.equal(d.attempts, 0, "it never ran");
      assert.equal(d.errors.length, 1);
    }
    assert.equal(await count(db.sql, "jobs"), 2);
  }
});

Deno.test("queue limits: rows just under, at and over the limit, in every position", async () => {
  const sizes = [1, MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 3 * MiB];
  for (const first of sizes) {
    await using db = await freshDatabase();
    await insertRaw(db.sql, first, 2);
    for (const s of sizes) await insertRaw(db.sql, s, 1);
    await insertRaw(db.sql, 100, 0); // the small job behind them
    const claimed: string[] = [];
    for (let i = 0; i < 10; i++) {
      const ids = await claimIds(db.sql);
      if (ids.length === 0) break;
      claimed.push(...ids);
    }
    const over = sizes.filter((s) => s > MAX_PAYLOAD_BYTES).length +
      (first > MAX_PAYLOAD_BYTES ? 1 : 0);
    assert.equal(claimed.length, sizes.length + 2 - over, `first row ${first} bytes`);
    assert.equal(await count(db.sql, "dead_letters"), over);
    const left = await db.sql`select count(*)::int as n from queue.jobs where lease_until is null`;
    assert.equal(left[0]!.n, 0, "nothing is left behind");
  }
});

Deno.test("queue limits: a claim stops at max_claim_bytes, keeps order, never comes back empty early", async () => {
  // Property: whatever the sizes, repeated claims hand out every job under the
  // limit exactly once, in claim order, each claim within the byte budget (or a
  // single job), and dead-letter every job over it.
  await using db = await freshDatabase();
  const budget = 8 * MiB;
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.integer({ min: 10, max: 2000 }),
          fc.integer({ min: 900_000, max: MAX_PAYLOAD_BYTES + 100_000 }),
        ),
        { minLength: 1, maxLength: 16 },
      ),
      fc.integer({ min: 1, max: 30 }),
      async (sizes, maxJobs) => {
        await db.sql`truncate queue.jobs, queue.dead_letters`;
        const ids: string[] = [];
        for (const [i, s] of sizes.entries()) {
          const [r] = await db.sql`insert into queue.jobs (job_type, payload, run_at)
            values ('t', jsonb_build_object('p', repeat('x', ${s - 9}::int)),
              now() - make_interval(secs => ${sizes.length - i})) returning id`;
          ids.push(r!.id);
        }
        const claimed: string[] = [];
        for (;;) {
          const rows = await db.sql<{ id: string; bytes: number }[]>`
            select id, octet_length(payload::text) as bytes
            from queue.claim('default', ${maxJobs}, 30, 'p')`;
          if (rows.length === 0) break;
          assert.ok(rows.length <= maxJobs);
          const total = rows.reduce((a, r) => a + r.bytes, 0);
          assert.ok(total <= budget || rows.length === 1, `claim of ${total} bytes`);
          claimed.push(...rows.map((r) => r.id));
        }
        const expected = ids.filter((_, i) => sizes[i]! <= MAX_PAYLOAD_BYTES);
        assert.deepEqual(claimed, expected);
        const dead = await db.sql`select id from queue.dead_letters order by id`;
        assert.deepEqual(
          dead.map((d) => d.id),
          ids.filter((_, i) => sizes[i]! > MAX_PAYLOAD_BYTES),
        );
      },
    ),
    { numRuns: 10 },
  );
});

Deno.test("queue limits: enqueue refuses payloads over the limit (54000), single, batch and outbox", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.t_big (id int primary key, body text)`;
  await db.sql`create trigger t_big_jobs after insert on public.t_big
    for each row execute function queue.enqueue_row_change('t.big')`;
  for (const bytes of [MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 5 * MiB]) {
    // The outbox payload around the row (id = bytes): {"type": "INSERT", ..., "record": {...}}
    const [{ overhead }] = await db.sql`select octet_length(jsonb_build_object('type', 'INSERT',
      'schema', 'public', 'table', 't_big', 'record', jsonb_build_object('id', ${bytes}::int,
      'body', ''), 'old_record', null)::text) as overhead`;
    const ok = bytes <= MAX_PAYLOAD_BYTES;
    const payload = sized(bytes) as postgres.JSONValue;
    const before = await count(db.sql, "jobs");
    const attempts: [string, () => Promise<unknown>][] = [
      ["enqueue", () => db.sql`select queue.enqueue('t', ${db.sql.json(payload)})`],
      [
        "enqueue_many",
        () =>
          db.sql`select queue.enqueue_many(${
            db.sql.json([{ job_type: "t" }, { job_type: "t", payload }, { job_type: "t" }])
          })`,
      ],
      ["outbox", () =>
        db.sql`insert into public.t_big values (${bytes},
          ${"x".repeat(bytes - (overhead as number))})`],
    ];
    for (const [path, run] of attempts) {
      if (ok) {
        await run();
      } else {
        await assert.rejects(run(), (e: Error) => {
          assert.equal(code(e), "54000", `${path} ${bytes}`);
          assert.match(e.message, new RegExp(`payload too large: ${bytes} bytes`));
          return true;
        });
      }
    }
    const added = (await count(db.sql, "jobs")) - before;
    assert.equal(added, ok ? 5 : 0, `${bytes} bytes: all or nothing`);
    const [{ n }] = await db.sql`select count(*)::int as n from public.t_big where id = ${bytes}`;
    assert.equal(n, ok ? 1 : 0, "a refused outbox write leaves no row either");
  }
});

Deno.test("queue limits: any JSON payload is accepted by SQL exactly when its text fits", async () => {
  // The class: arbitrary JSON (unicode, escapes, numbers, nesting) padded to land
  // near the limit. TypeScript refuses before sending only what SQL would refuse.
  await using db = await freshDatabase();
  const big = defineJob({
    type: "t",
    schema: z.record(z.string(), z.unknown()),
    handler: () => {},
  });
  await fc.assert(
    fc.asyncProperty(
      fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
      fc.integer({ min: -3000, max: 3000 }),
      fc.constantFrom("x", "é", "😀", "\n", '"'),
      async (value, delta, unit) => {
        const payload = JSON.parse(JSON.stringify({ ...value, pad: "" }));
        const [{ base }] = await db.sql`select octet_length(${
          db.sql.json(payload)
        }::jsonb::text) as base`;
        const [{ each }] = await db
          .sql`select octet_length(to_jsonb(${unit}::text)::text) - 2 as each`;
        const want = MAX_PAYLOAD_BYTES + delta - (base as number);
        payload.pad = unit.repeat(Math.max(0, Math.floor(want / (each as number))));
        const [{ bytes }] = await db.sql`select octet_length(${
          db.sql.json(payload)
        }::jsonb::text) as bytes`;
        const fits = (bytes as number) <= MAX_PAYLOAD_BYTES;
        const ts = await enqueue(db.sql, big, payload).then(() => "ok", (e) => e);
        if (fits) {
          assert.equal(ts, "ok", `${bytes} bytes fit`);
        } else {
          assert.ok(ts instanceof PayloadTooLargeError, `${bytes} bytes: ${ts}`);
          if (ts.cause !== undefined) assert.equal(code(ts.cause), "54000");
        }
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("queue limits: TypeScript refuses oversized payloads before sending, maps the rest", async () => {
  await using db = await freshDatabase();
  const job = defineJob({ type: "t", schema: z.object({ p: z.string() }), handler: () => {} });
  const early = await enqueue(db.sql, job, { p: "x".repeat(2 * MiB) }).catch((e) => e);
  assert.ok(early instanceof PayloadTooLargeError);
  assert.equal(early.cause, undefined, "refused before any SQL ran");
  assert.equal(early.status, 413);
  // JSON.stringify prints no spaces; Postgres prints one after ':' and ','. A
  // payload that fits the first way but not the second is caught by SQL.
  const items = Array.from({ length: 40_000 }, () => 0);
  const near = {
    a: items,
    p: "x".repeat(MAX_PAYLOAD_BYTES - JSON.stringify({ a: items, p: "" }).length),
  };
  assert.equal(new TextEncoder().encode(JSON.stringify(near)).length, MAX_PAYLOAD_BYTES);
  const late = await enqueue(
    db.sql,
    defineJob({
      type: "t2",
      schema: z.object({ a: z.array(z.number()), p: z.string() }),
      handler: () => {},
    }),
    near,
  ).catch((e) => e);
  assert.ok(late instanceof PayloadTooLargeError, String(late));
  assert.equal(code(late.cause), "54000");
  assert.equal(await count(db.sql, "jobs"), 0);
});

Deno.test("queue limits: enqueueMany splits a batch by bytes, keeping input order", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "t",
    schema: z.object({ p: z.string(), i: z.number() }),
    handler: () => {},
  });
  const items = Array.from(
    { length: 10 },
    (_, i) => ({ job, payload: { i, p: "x".repeat(900_000) } }),
  );
  const ids = await enqueueMany(db.sql, items, { statementBytes: 3 * MiB });
  const rows = await db.sql`select id, (payload ->> 'i')::int as i, xmin::text as tx
    from queue.jobs order by id`;
  assert.deepEqual(rows.map((r) => Number(r.id)), ids);
  assert.deepEqual(rows.map((r) => r.i), items.map((it) => it.payload.i));
  // Each statement commits on its own here, so its rows share a transaction id.
  assert.equal(new Set(rows.map((r) => r.tx)).size, 4, "3 jobs per 3 MiB statement");
});

Deno.test("queue limits: enqueueMany, statements in flight: ids in input order", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "t",
    schema: z.object({ p: z.string(), i: z.number() }),
    handler: () => {},
  });
  const items = Array.from(
    { length: 10 },
    (_, i) => ({ job, payload: { i, p: "x".repeat(900_000) } }),
  );
  const ids = await enqueueMany(db.sql, items, { statementBytes: 3 * MiB, statementsInFlight: 3 });
  assert.equal(new Set(ids).size, items.length);
  const rows = await db.sql`select id, (payload ->> 'i')::int as i from queue.jobs`;
  const byId = new Map(rows.map((r) => [Number(r.id), r.i]));
  assert.deepEqual(ids.map((id) => byId.get(id)), items.map((it) => it.payload.i));
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    await assert.rejects(
      enqueueMany(db.sql, items.slice(0, 1), { statementsInFlight: bad }),
      QueueOptionsError,
      String(bad),
    );
  }
});

Deno.test("queue limits: run_at must be finite, in years 1..9999", async () => {
  await using db = await freshDatabase();
  const cases: [string, boolean][] = [
    ["infinity", false],
    ["-infinity", false],
    ["4713-01-01 00:00:00+00 BC", false],
    ["0001-01-01 00:00:00+00 BC", false],
    ["0001-01-01 00:00:00+00", true],
    ["2026-11-24 12:00:00+00", true],
    ["9999-12-31 23:59:59.999999+00", true],
    ["10000-01-01 00:00:00+00", false],
    ["294276-12-31 23:59:59+00", false],
  ];
  for (const [at, ok] of cases) {
    const single = () => db.sql`select queue.enqueue('t', '{}', ${at}::text::timestamptz)`;
    const batch = () =>
      db.sql`select queue.enqueue_many(${
        db.sql.json([{ job_type: "t" }, { job_type: "t", run_at: at }])
      })`;
    for (const run of [single, batch]) {
      if (ok) await run();
      else {
        await assert.rejects(run(), (e: Error) => {
          assert.equal(code(e), "22023", at);
          assert.match(e.message, /run_at must be a finite time/);
          return true;
        });
      }
    }
  }
  assert.equal(await count(db.sql, "jobs"), 3 * cases.filter(([, ok]) => ok).length);
  // A run_at that is not a timestamp string: a clear error naming it, nothing written.
  for (const at of [1700000000, true, { at: 1 }, [1]]) {
    await assert.rejects(
      db.sql`select queue.enqueue_many(${db.sql.json([{ job_type: "t", run_at: at }])})`,
      (e: Error) =>
        code(e) === "22023" && /run_at of element 1 must be an ISO 8601 string/.test(e.message),
    );
  }
  for (const at of ["NaN", "soon", ""]) {
    await assert.rejects(
      db.sql`select queue.enqueue_many(${db.sql.json([{ job_type: "t", run_at: at }])})`,
      (e: Error) => ["22007", "22008"].includes(code(e)!) && e.message.includes(`"${at}"`),
    );
  }
  assert.equal(await count(db.sql, "jobs"), 3 * cases.filter(([, ok]) => ok).length);
});

Deno.test("queue limits: TypeScript refuses run times SQL would refuse", async () => {
  await using db = await freshDatabase();
  const job = defineJob({ type: "t", schema: z.object({}), handler: () => {} });
  const bad: { runAt?: Date; delayMs?: number }[] = [
    { runAt: new Date(NaN) },
    { runAt: new Date(8.64e15) },
    { runAt: new Date(-8.64e15) },
    { runAt: new Date(Date.UTC(10000, 0, 1)) },
    { runAt: new Date(Date.parse("0001-01-01T00:00:00Z") - 1) },
    { delayMs: Infinity },
    { delayMs: NaN },
    { delayMs: -1 },
    { delayMs: 8.64e15 },
  ];
  for (const options of bad) {
    await assert.rejects(
      enqueue(db.sql, job, {}, options),
      QueueOptionsError,
      JSON.stringify(options),
    );
  }
  assert.equal(await count(db.sql, "jobs"), 0);
  await enqueue(db.sql, job, {}, { runAt: new Date(Date.parse("0001-01-01T00:00:00Z")) });
  await enqueue(db.sql, job, {}, { runAt: new Date(Date.UTC(10000, 0, 1) - 1) });
  assert.equal(await count(db.sql, "jobs"), 2);
});

Deno.test("queue limits: stats and claim cope with infinite run_at rows already in the table", async () => {
  await using db = await freshDatabase();
  await db.sql`insert into queue.jobs (job_type, run_at) values
    ('t', '-infinity'), ('t', 'infinity'), ('t', now() - interval '10 s')`;
  const [s] = await db.sql`select * from queue.stats()`;
  assert.deepEqual([s!.runnable, s!.scheduled].map(Number), [2, 1]);
  assert.ok(
    Number.isFinite(s!.oldest_runnable_age_seconds),
    String(s!.oldest_runnable_age_seconds),
  );
  assert.ok(s!.oldest_runnable_age_seconds >= 9);
  assert.equal((await claimIds(db.sql)).length, 2, "the -infinity row runs, first");
});
