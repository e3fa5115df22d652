/**
 * `appendEvents` on real Postgres: order, versions, optimistic concurrency (409),
 * and every bad input refused with a clear, typed error and nothing appended.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import {
  appendEvents,
  EventTooLargeError,
  InvalidEventError,
  MAX_EVENT_BYTES,
  problemResponse,
  WrongExpectedVersionError,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

type Sql = Awaited<ReturnType<typeof freshDatabase>>["sql"];

const countEvents = async (sql: Sql) =>
  (await sql`select count(*)::int as n from events.events`)[0]!.n as number;

const readStream = async (sql: Sql, stream: string) =>
  await sql<{ type: string; data: unknown; version: string; position: string }[]>`
    select type, data, version, "position" from events.read_stream(${stream})`;

Deno.test("events ts: appendEvents appends in order, returns positions and the stream's version", async () => {
  await using db = await freshDatabase();
  const first = await appendEvents(db.sql, "order-1", [
    { type: "order.placed", data: { total: 10 } },
    { type: "order.paid", data: { amount: 10 }, metadata: { by: "test" } },
  ]);
  assert.equal(first.version, 2);
  assert.equal(first.positions.length, 2);
  assert.ok(BigInt(first.positions[0]!) < BigInt(first.positions[1]!));
  const next = await appendEvents(db.sql, "order-1", [{ type: "order.shipped", data: {} }], {
    expectedVersion: 2,
  });
  assert.equal(next.version, 3);
  const rows = await readStream(db.sql, "order-1");
  assert.deepEqual(rows.map((r) => [r.type, Number(r.version)]), [
    ["order.placed", 1],
    ["order.paid", 2],
    ["order.shipped", 3],
  ]);
  assert.deepEqual(rows.map((r) => String(r.position)), [...first.positions, ...next.positions]);
  // A new stream is at version 0.
  assert.equal(
    (await appendEvents(db.sql, "order-2", [{ type: "t", data: {} }], {
      expectedVersion: 0,
    })).version,
    1,
  );
  // Inside a transaction: the events commit or roll back with it.
  await db.sql.begin(async (tx) => {
    await appendEvents(tx, "order-3", [{ type: "t", data: {} }]);
    await tx`select 1/0`.catch(() => {});
    throw new Error("roll back");
  }).catch(() => {});
  assert.equal((await readStream(db.sql, "order-3")).length, 0);
});

Deno.test("events ts: a wrong expectedVersion is WrongExpectedVersionError, answered 409", async () => {
  await using db = await freshDatabase();
  await appendEvents(db.sql, "acct-1", [{ type: "opened", data: {} }]);
  for (const expected of [0, 2, 7]) {
    const error = await appendEvents(db.sql, "acct-1", [{ type: "t", data: {} }], {
      expectedVersion: expected,
    }).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof WrongExpectedVersionError, String(error));
    assert.equal(error.stream, "acct-1");
    assert.equal(error.expectedVersion, expected);
    assert.equal(error.actualVersion, 1);
    const res = problemResponse(error, "req-1");
    assert.equal(res.status, 409);
    assert.equal((await res.json()).code, "wrong_expected_version");
  }
  // The same refusal from SQL called directly is a 409 too.
  const raw = await db.sql`select events.append('acct-1', 't', '{}', '{}', 5)`.then(
    () => null,
    (e: unknown) => e,
  );
  const rawRes = problemResponse(raw, "req-2");
  assert.equal(rawRes.status, 409);
  assert.equal((await rawRes.json()).code, "wrong_expected_version");
  // Two writers that read the same version: exactly one wins.
  const results = await Promise.allSettled(
    [1, 2].map((i) =>
      appendEvents(db.sql, "acct-1", [{ type: "deposit", data: { i } }], { expectedVersion: 1 })
    ),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  assert.ok(rejected.reason instanceof WrongExpectedVersionError);
  assert.equal((await readStream(db.sql, "acct-1")).length, 2);
});

Deno.test("events ts: bad input gets a clear typed error (422 or 413) and appends nothing", async () => {
  await using db = await freshDatabase();
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  class Point {
    x = 1;
  }
  const big = "x".repeat(10 * 1024 * 1024);
  const cases: [string, string, unknown, object, new (...a: never[]) => Error, RegExp][] = [
    ["empty stream", "", [{ type: "t", data: {} }], {}, InvalidEventError, /stream/],
    ["long stream", "s".repeat(201), [{ type: "t", data: {} }], {}, InvalidEventError, /stream/],
    ["control chars", "a\nb", [{ type: "t", data: {} }], {}, InvalidEventError, /stream/],
    [
      "stream not a string",
      42 as unknown as string,
      [{ type: "t", data: {} }],
      {},
      InvalidEventError,
      /stream/,
    ],
    ["no events", "s", [], {}, InvalidEventError, /1\.\.10000/],
    ["events not an array", "s", { type: "t", data: {} }, {}, InvalidEventError, /1\.\.10000/],
    ["event null", "s", [null], {}, InvalidEventError, /event 0 must be an object/],
    ["empty type", "s", [{ type: "", data: {} }], {}, InvalidEventError, /type/],
    ["data array", "s", [{ type: "t", data: [1] }], {}, InvalidEventError, /data must be/],
    ["data string", "s", [{ type: "t", data: "x" }], {}, InvalidEventError, /data must be/],
    ["data null", "s", [{ type: "t", data: null }], {}, InvalidEventError, /data must be/],
    ["data number", "s", [{ type: "t", data: 5 }], {}, InvalidEventError, /data must be/],
    ["data class", "s", [{ type: "t", data: new Point() }], {}, InvalidEventError, /data must be/],
    ["data Date", "s", [{ type: "t", data: new Date() }], {}, InvalidEventError, /data must be/],
    [
      "metadata array",
      "s",
      [{ type: "t", data: {}, metadata: [] }],
      {},
      InvalidEventError,
      /metadata/,
    ],
    ["circular data", "s", [{ type: "t", data: circular }], {}, InvalidEventError, /JSON/],
    ["bigint data", "s", [{ type: "t", data: { n: 1n } }], {}, InvalidEventError, /JSON/],
    [
      "negative expectedVersion",
      "s",
      [{ type: "t", data: {} }],
      { expectedVersion: -1 },
      InvalidEventError,
      /expectedVersion/,
    ],
    [
      "fractional expectedVersion",
      "s",
      [{ type: "t", data: {} }],
      { expectedVersion: 1.5 },
      InvalidEventError,
      /expectedVersion/,
    ],
    [
      "10 MB event",
      "s",
      [{ type: "t", data: { big } }],
      {},
      EventTooLargeError,
      /limit is 1048576/,
    ],
    // The second event is bad: the first is not appended either.
    [
      "bad second event",
      "s",
      [{ type: "t", data: {} }, { type: "t", data: [] }],
      {},
      InvalidEventError,
      /event 1/,
    ],
  ];
  for (const [name, stream, events, options, type, message] of cases) {
    const error = await appendEvents(db.sql, stream, events as never, options).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof type, `${name}: ${error}`);
    assert.match((error as Error).message, message, name);
    const res = problemResponse(error, "r");
    assert.equal(res.status, type === EventTooLargeError ? 413 : 422, name);
  }
  assert.equal(await countEvents(db.sql), 0);
});

Deno.test("events ts: refusals Postgres makes itself map to the same types (size as Postgres prints it)", async () => {
  await using db = await freshDatabase();
  // jsonb prints ", " and ": ": many small keys fit the limit as JSON.stringify
  // counts them but not as Postgres prints them, so only SQL can refuse this one.
  const data: Record<string, number> = {};
  // `"k<i>":1,` is the entry's JSON length; counted as we go (stringifying each time is quadratic).
  for (let i = 0, length = 2; length < MAX_EVENT_BYTES - 20; i++) {
    data[`k${i}`] = 1;
    length += `"k${i}":1,`.length;
  }
  assert.ok(JSON.stringify(data).length < MAX_EVENT_BYTES);
  const error = await appendEvents(db.sql, "s", [{ type: "t", data }]).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof EventTooLargeError, String(error));
  assert.equal(problemResponse(error, "r").status, 413);
  // A raw SQL refusal keeps its message for the log.
  assert.match(error.message, /events:/);
  assert.equal(await countEvents(db.sql), 0);
});

Deno.test("events ts (fast-check): valid batches read back exactly; invalid ones append nothing", async () => {
  await using db = await freshDatabase();
  let n = 0;
  // Postgres text and jsonb refuse NUL; lone surrogates do not survive UTF-8.
  const storable = (v: unknown) => {
    const text = JSON.stringify(v);
    return !text.includes("\\u0000") && text === text.toWellFormed();
  };
  const event = fc.record({
    // deno-lint-ignore no-control-regex
    type: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s)),
    data: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), {
      maxKeys: 4,
    }).filter(storable),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(event, { minLength: 1, maxLength: 5 }),
      fc.option(fc.constantFrom([1], "x", null, 3, true), { nil: undefined }),
      async (events, badData) => {
        const stream = `p-${n++}`;
        const batch = badData === undefined
          ? events
          : [...events, { type: "bad", data: badData as unknown as Record<string, unknown> }];
        const before = await countEvents(db.sql);
        const result = await appendEvents(db.sql, stream, batch).then((r) => r, (e) => e);
        if (badData !== undefined) {
          assert.ok(result instanceof InvalidEventError);
          assert.equal(await countEvents(db.sql), before);
          return;
        }
        assert.equal(result.version, events.length);
        const rows = await readStream(db.sql, stream);
        assert.deepEqual(
          rows.map((r) => [r.type, r.data]),
          events.map((e) => [e.type, JSON.parse(JSON.stringify(e.data))]),
        );
      },
    ),
    { numRuns: 60 },
  );
});
