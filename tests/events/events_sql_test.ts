/**
 * The event log's SQL API on real Postgres (supabase/migrations/20261124005000_events.sql):
 * append, append_many, read, read_stream, expected_version, limits and grants.
 * Gap safety has its own file (events_gap_test.ts).
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import postgres from "npm:postgres@3";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
interface Event {
  position: string;
  stream: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  version: string;
  created_at: Date;
}

const append = async (
  sql: Sql,
  stream: string,
  type: string,
  data: unknown,
  opts: { metadata?: unknown; expected?: number | null } = {},
) =>
  (await sql`select events.append(${stream}, ${type}, ${sql.json(data as postgres.JSONValue)},
    ${sql.json((opts.metadata ?? {}) as postgres.JSONValue)}, ${opts.expected ?? null}) as p`)[0]!
    .p as string;

/**
 * Waits until no committed event is beyond the settled bound: a transaction of
 * another database (or autovacuum) that is briefly open can hold it back, and
 * read only ever shows settled positions.
 */
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

const readAll = async (sql: Sql, after = "0", prefix: string | null = null) => {
  await settled(sql);
  return await sql<Event[]>`select * from events.read(${after}, 10000, ${prefix})`;
};

/** The SQLSTATE of a rejected promise (fails the test when it resolves). */
async function sqlState(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    return (error as { code?: string }).code ?? `no code: ${error}`;
  }
  throw new Error("expected an error");
}

Deno.test("events sql: append and read: positions increase, versions count from 1 per stream", async () => {
  await using db = await freshDatabase();
  const p1 = await append(db.sql, "order-1", "order.placed", { total: 5 }, {
    metadata: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  });
  const p2 = await append(db.sql, "order-2", "order.placed", { total: 7 });
  const p3 = await append(db.sql, "order-1", "order.paid", {});
  assert.ok(BigInt(p1) < BigInt(p2) && BigInt(p2) < BigInt(p3), [p1, p2, p3].join(" "));
  const all = await readAll(db.sql);
  assert.deepEqual(all.map((e) => [e.position, e.stream, e.type, e.version]), [
    [p1, "order-1", "order.placed", "1"],
    [p2, "order-2", "order.placed", "1"],
    [p3, "order-1", "order.paid", "2"],
  ]);
  assert.deepEqual(all[0]!.data, { total: 5 });
  assert.equal(
    all[0]!.metadata.traceparent,
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  );
  assert.ok(all[0]!.created_at instanceof Date);
  // after_position, max_count and the stream prefix.
  assert.deepEqual((await readAll(db.sql, p1)).map((e) => e.position), [p2, p3]);
  const [first] = await db.sql<Event[]>`select * from events.read(0, 1)`;
  assert.equal(first!.position, p1);
  assert.deepEqual((await readAll(db.sql, "0", "order-1")).map((e) => e.position), [p1, p3]);
  assert.deepEqual((await readAll(db.sql, "0", "order-")).length, 3);
  assert.deepEqual((await readAll(db.sql, "0", "nothing")).length, 0);
  const stream = await db.sql<Event[]>`select * from events.read_stream('order-1')`;
  assert.deepEqual(stream.map((e) => e.version), ["1", "2"]);
  const rest = await db.sql<Event[]>`select * from events.read_stream('order-1', 1)`;
  assert.deepEqual(rest.map((e) => e.type), ["order.paid"]);
});

Deno.test("events sql: the transaction setting events.traceparent fills metadata.traceparent", async () => {
  await using db = await freshDatabase();
  const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  await db.sql.begin(async (tx) => {
    await tx`select set_config('events.traceparent', ${trace}, true)`;
    await tx`select events.append('s', 't', '{}')`;
    await tx`select events.append('s', 't', '{}', '{"traceparent": "mine"}')`;
  });
  await append(db.sql, "s", "t", {}); // the setting was local to that transaction
  const all = await readAll(db.sql);
  assert.deepEqual(all.map((e) => e.metadata.traceparent ?? null), [trace, "mine", null]);
});

Deno.test("events sql: expected_version: match, mismatch P0409 naming stream and versions, 0 for new", async () => {
  await using db = await freshDatabase();
  await append(db.sql, "cart-1", "cart.opened", {}, { expected: 0 });
  await append(db.sql, "cart-1", "cart.item_added", { sku: "a" }, { expected: 1 });
  const cases: [string, number, string][] = [
    ["cart-1", 0, "at version 2, expected version 0"],
    ["cart-1", 1, "at version 2, expected version 1"],
    ["cart-1", 3, "at version 2, expected version 3"],
    ["cart-2", 1, "at version 0, expected version 1"],
  ];
  for (const [stream, expected, message] of cases) {
    await assert.rejects(
      append(db.sql, stream, "x", {}, { expected }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "P0409", `${stream} ${expected}`);
        assert.match(e.message, new RegExp(`stream ${stream} .*${message}`));
        return true;
      },
    );
  }
  await append(db.sql, "cart-1", "cart.checked_out", {}, { expected: 2 });
  await append(db.sql, "cart-1", "cart.note", {}); // null: no check
  const rows = await db.sql`select version, type from events.read_stream('cart-1')`;
  assert.deepEqual(rows.map((r) => r.version), ["1", "2", "3", "4"]);
  assert.equal(await sqlState(append(db.sql, "cart-1", "x", {}, { expected: -1 })), "22023");
  const [{ n }] = await db
    .sql`select count(*)::int as n from events.events where stream = 'cart-2'`;
  assert.equal(n, 0, "a refused append writes nothing");
});

Deno.test("events sql: concurrent appenders with the same expected_version: exactly one wins", async () => {
  await using db = await freshDatabase();
  const sql = postgres(db.url, { max: 12, onnotice: () => {} });
  try {
    for (const expected of [0, 1]) {
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => append(sql, "race", "t", { i }, { expected })),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
      assert.equal(won.length, 1, `expected ${expected}`);
      assert.deepEqual(new Set(lost.map((r) => r.reason.code)), new Set(["P0409"]));
    }
    // Held open: the second appender waits on the stream, then loses.
    const a = await sql.reserve();
    const b = await sql.reserve();
    try {
      await a`begin`;
      await b`begin`;
      await append(a as unknown as Sql, "race", "t", { who: "a" }, { expected: 2 });
      const [{ pid }] = await b`select pg_backend_pid() as pid`;
      const losing = sqlState(
        append(b as unknown as Sql, "race", "t", { who: "b" }, { expected: 2 }),
      );
      await waitUntilBlocked(sql, pid);
      await a`commit`;
      assert.equal(await losing, "P0409");
      await b`rollback`;
    } finally {
      a.release();
      b.release();
    }
    const rows = await sql`select version, data from events.read_stream('race')`;
    assert.deepEqual(rows.map((r) => r.version), ["1", "2", "3"]);
    assert.equal(rows[2]!.data.who, "a");
  } finally {
    await sql.end();
  }
});

/** Waits (on progress, not time) until backend `pid` waits for a lock. */
async function waitUntilBlocked(sql: Sql, pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (true) {
    const [{ waiting }] = await sql`select wait_event_type = 'Lock' as waiting
      from pg_stat_activity where pid = ${pid}`;
    if (waiting) return;
    if (Date.now() > deadline) throw new Error(`backend ${pid} never blocked`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("events sql: an older transaction appending behind a younger one gets 40001, a retry works", async () => {
  await using db = await freshDatabase();
  const sql = postgres(db.url, { max: 4, onnotice: () => {} });
  const old = await sql.reserve();
  try {
    await old`begin`;
    await old`select pg_current_xact_id()`; // takes its xid (its position range) now
    await append(sql, "hot", "t", { n: 1 }); // a younger transaction appends and commits
    assert.equal(await sqlState(append(old as unknown as Sql, "hot", "t", { n: 2 })), "40001");
    await old`rollback`;
    await append(old as unknown as Sql, "hot", "t", { n: 2 }); // the retry: a fresh xid
    const rows = await sql`select position, version from events.read_stream('hot')`;
    assert.deepEqual(rows.map((r) => r.version), ["1", "2"]);
    assert.ok(BigInt(rows[0]!.position) < BigInt(rows[1]!.position));
  } finally {
    old.release();
    await sql.end();
  }
});

Deno.test("events sql: append_many is atomic, in input order, and checks expected_version once", async () => {
  await using db = await freshDatabase();
  const batch = [
    { type: "a", data: { i: 1 } },
    { type: "b", data: { i: 2 }, metadata: { m: true } },
    { type: "c", data: { i: 3 }, metadata: null },
  ];
  const rows = await db.sql`select * from events.append_many('s', ${db.sql.json(batch)}, 0)`;
  assert.deepEqual(rows.map((r) => r.version), ["1", "2", "3"]);
  assert.ok(rows.every((r, i) => i === 0 || BigInt(r.position) > BigInt(rows[i - 1]!.position)));
  const bad = [
    { type: "d", data: {} },
    { type: "e", data: [1] }, // not an object: the whole batch is refused
  ];
  await assert.rejects(
    db.sql`select * from events.append_many('s', ${db.sql.json(bad)}, 3)`,
    (e: Error & { code?: string }) => e.code === "22023" && /event 2/.test(e.message),
  );
  assert.equal(
    await sqlState(db.sql`select * from events.append_many('s', ${db.sql.json(batch)}, 1)`),
    "P0409",
  );
  const stored = await readAll(db.sql);
  assert.deepEqual(stored.map((e) => e.type), ["a", "b", "c"]);
  assert.deepEqual(stored.map((e) => e.metadata), [{}, { m: true }, {}]);
  // The batch and the caller's transaction commit or roll back together.
  await assert.rejects(db.sql.begin(async (tx) => {
    await tx`select * from events.append_many('s', ${tx.json([{ type: "x", data: {} }])})`;
    throw new Error("abort");
  }));
  assert.equal((await readAll(db.sql)).length, 3);
});

Deno.test("events sql: bad input classes are refused with 22023 and write nothing", async () => {
  await using db = await freshDatabase();
  const bad: [string, string][] = [
    ["empty stream", `select events.append('', 't', '{}')`],
    ["null stream", `select events.append(null, 't', '{}')`],
    ["stream of 201 characters", `select events.append(repeat('s', 201), 't', '{}')`],
    ["control character in stream", `select events.append(E's\\n1', 't', '{}')`],
    ["null type", `select events.append('s', null, '{}')`],
    ["empty type", `select events.append('s', '', '{}')`],
    ["null data", `select events.append('s', 't', null)`],
    ["array data", `select events.append('s', 't', '[1,2]')`],
    ["string data", `select events.append('s', 't', '"text"')`],
    ["number data", `select events.append('s', 't', '42')`],
    ["JSON null data", `select events.append('s', 't', 'null')`],
    ["array metadata", `select events.append('s', 't', '{}', '[]')`],
    ["negative expected_version", `select events.append('s', 't', '{}', '{}', -1)`],
    ["append_many of an object", `select * from events.append_many('s', '{"type":"t"}')`],
    ["append_many of nothing", `select * from events.append_many('s', '[]')`],
    ["append_many element not an object", `select * from events.append_many('s', '[1]')`],
    ["append_many numeric type", `select * from events.append_many('s', '[{"type":1,"data":{}}]')`],
    ["append_many without data", `select * from events.append_many('s', '[{"type":"t"}]')`],
    [
      "append_many over the batch limit",
      `select * from events.append_many('s', (select jsonb_agg(jsonb_build_object('type', 't',
        'data', '{}'::jsonb)) from generate_series(1, events.max_batch() + 1)))`,
    ],
  ];
  for (const [name, statement] of bad) {
    assert.equal(await sqlState(db.sql.unsafe(statement)), "22023", name);
  }
  const [{ n }] = await db.sql`select count(*)::int as n from events.events`;
  assert.equal(n, 0);
});

Deno.test("events sql: the size limit: data + metadata just under, at and over max_event_bytes", async () => {
  await using db = await freshDatabase();
  const [{ max }] = await db.sql`select events.max_event_bytes() as max`;
  assert.equal(max, 1048576);
  // {"x": "..."} is 9 bytes of JSON around the string; metadata {} is 2.
  const data = (bytes: number) => ({ x: "a".repeat(bytes - 9 - 2) });
  await append(db.sql, "s", "t", data(max - 1));
  await append(db.sql, "s", "t", data(max));
  await assert.rejects(append(db.sql, "s", "t", data(max + 1)), (e: Error & { code?: string }) => {
    assert.equal(e.code, "54000");
    assert.match(e.message, /1048577 bytes .* limit is 1048576/);
    return true;
  });
  // Metadata counts too, and so does a 10 MB event, through both entry points.
  assert.equal(
    await sqlState(append(db.sql, "s", "t", data(max - 100), { metadata: { m: "b".repeat(200) } })),
    "54000",
  );
  const big = { blob: "z".repeat(10 * 1024 * 1024) };
  assert.equal(await sqlState(append(db.sql, "s", "t", big)), "54000");
  assert.equal(
    await sqlState(db.sql`select * from events.append_many('s', ${
      db.sql.json([
        { type: "t", data: {} },
        { type: "t", data: big },
      ])
    })`),
    "54000",
  );
  const [{ n }] = await db.sql`select count(*)::int as n from events.events`;
  assert.equal(n, 2);
});

/** The migration's rule for stream and type names. */
const validName = (s: string) =>
  // deno-lint-ignore no-control-regex
  [...s].length >= 1 && [...s].length <= 200 && !/[\x00-\x1f\x7f]/.test(s);

Deno.test("events sql: stream names as a class (fast-check): valid ones round-trip, others 22xxx", async () => {
  await using db = await freshDatabase();
  const name = fc.oneof(
    fc.string({ maxLength: 210 }),
    fc.string({ unit: "grapheme", maxLength: 60 }),
    fc.string({ unit: "binary", maxLength: 220 }),
    fc.constantFrom("", " ", "\t", "a\u0000b", "x".repeat(200), "x".repeat(201), "é".repeat(200)),
  );
  await fc.assert(
    fc.asyncProperty(name, async (stream) => {
      const result = await append(db.sql, stream, "t", { s: stream }).then(
        (position) => ({ position }),
        (error) => ({ code: (error as { code?: string }).code }),
      );
      if (validName(stream)) {
        assert.ok("position" in result, JSON.stringify([stream, result]));
        const [row] = await db.sql`select stream, data from events.events
          where position = ${result.position}`;
        assert.equal(row!.stream, stream);
        assert.equal(row!.data.s, stream);
      } else {
        // 22023 from the checks; a NUL never reaches them (22021 from the protocol).
        assert.ok(
          "code" in result && /^22/.test(result.code ?? ""),
          JSON.stringify([stream, result]),
        );
      }
    }),
    { numRuns: 150 },
  );
});

Deno.test("events sql: payload shapes as a class (fast-check): objects stored as given, others 22023", async () => {
  await using db = await freshDatabase();
  await fc.assert(
    fc.asyncProperty(
      fc.jsonValue({ maxDepth: 3 }),
      fc.jsonValue({ maxDepth: 2 }),
      async (data, meta) => {
        const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
        const result = await append(db.sql, "shapes", "t", data, { metadata: meta }).then(
          (position) => ({ position }),
          (error) => ({ code: (error as { code?: string }).code }),
        );
        if (isObject(data) && (isObject(meta) || meta === null)) {
          assert.ok("position" in result, JSON.stringify([data, meta, result]));
          const [row] = await db
            .sql`select data from events.events where position = ${result.position}`;
          // jsonb normalises -0 and key order; compare through the same JSON round trip.
          assert.deepEqual(row!.data, JSON.parse(JSON.stringify(data)));
        } else {
          assert.ok(
            "code" in result && result.code === "22023",
            JSON.stringify([data, meta, result]),
          );
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("events sql: only service_role reaches schema events; every function is definer with empty search_path", async () => {
  await using db = await freshDatabase();
  const fns = await db.sql`
    select p.oid::regprocedure::text as sig, p.prosecdef, p.proconfig, p.prokind,
      has_function_privilege('anon', p.oid, 'execute') as anon,
      has_function_privilege('authenticated', p.oid, 'execute') as authed,
      has_function_privilege('service_role', p.oid, 'execute') as service
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'events'`;
  assert.ok(fns.length >= 30, `${fns.length} functions`);
  for (const f of fns) {
    assert.ok(f.prosecdef, `${f.sig} is security definer`);
    // search_path pinned empty; the subscription hot path also plans once per session.
    const planOnce = /^events\.(claim_batch|ack|nack|_advance)\(/.test(f.sig);
    assert.deepEqual(
      f.proconfig,
      planOnce ? ['search_path=""', "plan_cache_mode=force_generic_plan"] : ['search_path=""'],
      `${f.sig} pins search_path`,
    );
    assert.deepEqual([f.anon, f.authed], [false, false], f.sig);
    // The API is service_role's; helpers (leading underscore) are the owner's only.
    assert.equal(f.service, !/^events\._/.test(f.sig), f.sig);
  }
  for (const role of ["anon", "authenticated"]) {
    for (
      const statement of [
        "select events.append('s', 't', '{}')",
        "select * from events.read(0)",
        "select events.subscribe('x')",
        "select * from events.events",
        "select * from events.subscriptions",
      ]
    ) {
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx.unsafe(statement);
        }),
        /permission denied/,
        `${role}: ${statement}`,
      );
    }
  }
  const position = await db.sql.begin(async (tx) => {
    await tx.unsafe("set local role service_role");
    const [r] = await tx`select events.append('s', 't', '{}') as p`;
    await tx`select events.subscribe('svc')`;
    await tx`select * from events.read(0)`;
    await tx`select * from events.claim_batch('svc')`;
    return r!.p;
  });
  assert.ok(position);
  const tables = await db.sql`select c.relname, c.relrowsecurity from pg_class c
    join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'events' and c.relkind = 'r'`;
  assert.ok(tables.length >= 6);
  assert.ok(tables.every((t) => t.relrowsecurity), JSON.stringify(tables));
});
