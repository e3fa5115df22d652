/**
 * Rate-limit keys of any shape (NUL, lone surrogates, 100 KB) are stored and
 * limited like any other, and a store error caused by one statement's input
 * never counts as a store outage; a real outage still opens the breaker.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import fc from "npm:fast-check@4";
import {
  BreakerTimeoutError,
  isDataError,
  isStoreOutage,
  MAX_PLAIN_KEY_BYTES,
  rateLimit,
  type RateLimitRule,
  sqlState,
  storeBreaker,
  storedKey,
} from "../../supabase/functions/_shared/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";

/** What an attacker controls in a key: any string, any length, any code unit. */
const anyKey = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.constantFrom("\0", "a\0b", "\uD800", "\uDC00", "\uFFFD", "#", "#x", "\u{1F600}"),
  fc.tuple(fc.nat({ max: 100_000 }), fc.string({ unit: "binary", maxLength: 3 }))
    .map(([n, tail]) => "k".repeat(n) + tail),
  fc.constant("x".repeat(8 * 1024)),
);

Deno.test("isStoreOutage: real data errors do not count, real outages do", async () => {
  await using db = await freshDatabase();
  await db.sql`create table t (id int primary key, n int not null check (n > 0))`;
  await db.sql`insert into t values (1, 1)`;
  const errorOf = (p: Promise<unknown>) => p.then(() => assert.fail("no error"), (e) => e);
  const caller = [
    ["22012 division by zero", db.sql`select 1 / ${0}::int`],
    ["22021 NUL in text", db.sql`select ${"a\0b"}::text`],
    ["22003 out of range", db.sql`select ${"99999999999"}::int`],
    ["22P02 bad input syntax", db.sql`select ${"nope"}::int`],
    ["23505 unique violation", db.sql`insert into t values (1, 1)`],
    ["23514 check violation", db.sql`insert into t values (2, 0)`],
    ["42P01 undefined table", db.sql`select * from nowhere`],
    ["42883 undefined function", db.sql`select nothing_here()`],
  ] as const;
  for (const [name, query] of caller) {
    const error = await errorOf(query);
    assert.equal(isDataError(error), true, name);
    assert.equal(isStoreOutage(error), false, name);
  }
  // The original failure: an incompressible 9.6 kB key overflows the btree entry limit (54000).
  const program = await errorOf(db.sql`
    select * from resilience.rate_limit(
      (select string_agg(md5(random()::text), '') from generate_series(1, 300)), 1, 1000)`);
  assert.equal(sqlState(program), "54000");
  assert.equal(isStoreOutage(program), false, "a program limit hit by one statement");
  const down = postgres(`postgresql://postgres:postgres@127.0.0.1:${freePort()}/postgres`, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  try {
    const refused = await errorOf(down`select 1`);
    assert.equal(isStoreOutage(refused), true, "connection refused");
  } finally {
    await down.end();
  }
  assert.equal(isStoreOutage(new BreakerTimeoutError("s", 500)), true, "timeout");
  assert.equal(isStoreOutage(Object.assign(new Error("x"), { code: "57P01" })), true, "shutdown");
});

Deno.test("storedKey: short keys as given, others hashed, never colliding", async () => {
  assert.equal(await storedKey("r", "ip:203.0.113.9"), "r:ip:203.0.113.9");
  const long = await storedKey("r", "x".repeat(MAX_PLAIN_KEY_BYTES));
  assert.match(long, /^#[A-Za-z0-9_-]{43}$/);
  // UTF-8 would fold both lone surrogates into U+FFFD; they must stay apart.
  const [a, b, c] = await Promise.all(["\uD800", "\uDC00", "\uFFFD"].map((k) => storedKey("r", k)));
  assert.equal(new Set([a, b, c]).size, 3);
  // A plain key can never pose as a hash.
  assert.notEqual(await storedKey("#r", "k"), "#r:k");
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(anyKey, { minLength: 2, maxLength: 20 }), async (keys) => {
      const stored = await Promise.all(keys.map((k) => storedKey("rule", k)));
      assert.equal(new Set(stored).size, keys.length);
      for (const s of stored) {
        assert.ok(new TextEncoder().encode(s).byteLength <= MAX_PLAIN_KEY_BYTES);
        assert.ok(!s.includes("\0") && s.isWellFormed());
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("odd and oversized keys never open the store breaker; each is limited on its own", async () => {
  await using db = await freshDatabase();
  const warnings: unknown[] = [];
  const log = { warn: (_msg: string, fields?: unknown) => void warnings.push(fields) };
  const rule: RateLimitRule = { name: "odd", limit: 1, periodSeconds: 3600, timeoutMs: 30_000 };
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(anyKey, { minLength: 1, maxLength: 6 }), async (keys) => {
      const name = `odd-${crypto.randomUUID()}`;
      for (const key of keys) {
        const first = await rateLimit({ ...rule, name }, key, { sql: db.sql, log });
        assert.deepEqual([first.allowed, first.degraded], [true, undefined]);
      }
      for (const key of keys) {
        const second = await rateLimit({ ...rule, name }, key, { sql: db.sql, log });
        assert.deepEqual([second.allowed, second.degraded], [false, undefined]);
      }
      assert.equal(storeBreaker(db.sql).state.kind, "closed");
    }),
    {
      numRuns: 40,
      endOnFailure: true,
      // The shapes that broke it, always tried first: NUL, an 8 KB and a 100 KB key, surrogates.
      examples: [[["a\0b", "x".repeat(8192), "y".repeat(100_000), "\uD800", "\uDC00"]]],
    },
  );
  assert.deepEqual(warnings, []);
});

Deno.test("a store error for one key is that key's problem: the breaker stays closed for the rest", async () => {
  await using db = await freshDatabase();
  // Fault injection at the store, driven by the key itself: this key's row is refused.
  await db.sql.unsafe(`
    create function resilience.refuse_poison() returns trigger language plpgsql as $$
    begin
      if new.key like '%poison%' then
        raise exception 'refused' using errcode = '22023';
      end if;
      return new;
    end $$;
    create trigger refuse_poison before insert on resilience.rate_limits
      for each row execute function resilience.refuse_poison();`);
  const warnings: string[] = [];
  const log = { warn: (msg: string) => void warnings.push(msg) };
  const rule: RateLimitRule = { name: "one-key", limit: 100, periodSeconds: 60, timeoutMs: 30_000 };
  for (let i = 0; i < 10; i++) {
    const d = await rateLimit(rule, "poison", { sql: db.sql, log });
    assert.equal(d.degraded, "open");
  }
  assert.equal(warnings.length, 10);
  assert.equal(storeBreaker(db.sql).state.kind, "closed");
  const healthy = await rateLimit(rule, "fine", { sql: db.sql, log });
  assert.deepEqual([healthy.allowed, healthy.degraded, healthy.remaining], [true, undefined, 99]);
});

Deno.test("a real store outage still opens the store breaker", async () => {
  const sql = postgres(`postgresql://postgres:postgres@127.0.0.1:${freePort()}/postgres`, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  const log = { warn: () => {} };
  try {
    const rule: RateLimitRule = { name: "down", limit: 5, periodSeconds: 60 };
    for (let i = 0; i < 3; i++) {
      assert.equal((await rateLimit(rule, `k${i}`, { sql, log })).degraded, "open");
    }
    assert.equal(storeBreaker(sql).state.kind, "open");
  } finally {
    await sql.end();
  }
});
