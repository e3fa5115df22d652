/**
 * `resilience.rate_limit` (GCRA, one statement) run directly against real
 * Postgres with an explicit clock, plus the grants that keep it private.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_harness/database.ts";

const T0 = 1_800_000_000_000; // an arbitrary epoch-ms instant, passed as p_now_ms

Deno.test("rate_limit: GCRA admits a burst of `limit`, then replenishes one unit per period/limit", async () => {
  await using db = await freshDatabase();
  const decide = async (key: string, now: number, limit = 3, periodMs = 60_000, cost = 1) => {
    const [row] = await db.sql`
      select * from resilience.rate_limit(${key}, ${limit}, ${periodMs}, ${cost}, ${now})`;
    return row!;
  };
  const burst = [];
  for (let i = 0; i < 4; i++) burst.push(await decide("k", T0));
  assert.deepEqual(burst.map((r) => r.allowed), [true, true, true, false]);
  assert.deepEqual(burst.map((r) => r.remaining), [2, 1, 0, 0]);
  assert.deepEqual(burst.map((r) => r.reset_ms), [20_000, 40_000, 60_000, 60_000]);
  assert.deepEqual(burst.map((r) => r.retry_after_ms), [0, 0, 0, 20_000]);

  // 19.999 s later nothing has come back; at 20 s exactly one unit has.
  assert.equal((await decide("k", T0 + 19_999)).allowed, false);
  const back = await decide("k", T0 + 20_000);
  assert.equal(back.allowed, true);
  assert.equal(back.remaining, 0);
  assert.equal((await decide("k", T0 + 20_000)).allowed, false);

  // Keys are independent; a long idle period restores the full quota, not more.
  assert.equal((await decide("other", T0)).remaining, 2);
  const idle = await decide("k", T0 + 3_600_000);
  assert.equal(idle.allowed, true);
  assert.equal(idle.remaining, 2);
});

Deno.test("rate_limit: cost spends several units and a refused request spends none", async () => {
  await using db = await freshDatabase();
  const decide = async (cost: number, now = T0) => {
    const [row] = await db
      .sql`select * from resilience.rate_limit('c', 10, 10000, ${cost}, ${now})`;
    return row!;
  };
  assert.equal((await decide(7)).remaining, 3);
  const refused = await decide(4);
  assert.equal(refused.allowed, false);
  assert.equal(refused.retry_after_ms, 1_000); // one unit per second is missing
  assert.equal((await decide(3)).allowed, true); // the refusal did not spend anything
  assert.equal((await decide(11)).allowed, false); // more than the whole quota: never
});

Deno.test("rate_limit and breaker functions: service_role only; tables closed by RLS", async () => {
  await using db = await freshDatabase();
  for (const role of ["anon", "authenticated"]) {
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx`select * from resilience.rate_limit('x', 1, 1000)`;
      }),
      /permission denied/,
    );
  }
  const rows = await db.sql.begin(async (tx) => {
    await tx.unsafe("set local role service_role");
    await tx`select resilience.breaker_publish('svc', 'closed', null, 'i1')`;
    return await tx`select * from resilience.rate_limit('x', 1, 1000)`;
  });
  assert.equal(rows[0]!.allowed, true);
  const [rls] = await db.sql`
    select bool_and(c.relrowsecurity) as on from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'resilience' and c.relkind = 'r'`;
  assert.equal(rls!.on, true);
});

Deno.test("rate_limit_prune removes only rows idle for longer than the given interval", async () => {
  await using db = await freshDatabase();
  const old = Date.now() - 2 * 3_600_000;
  await db.sql`select * from resilience.rate_limit('old', 5, 1000, 1, ${old})`;
  await db.sql`select * from resilience.rate_limit('fresh', 5, 1000)`;
  const [pruned] = await db.sql`select resilience.rate_limit_prune(interval '1 hour') as n`;
  assert.equal(pruned!.n, 1);
  const keys = await db.sql`select key from resilience.rate_limits order by key`;
  assert.deepEqual(keys.map((r) => r.key), ["fresh"]);
});

Deno.test("breaker_publish/breaker_read: upsert per key, open_until round-trips in epoch ms", async () => {
  await using db = await freshDatabase();
  const until = 1_900_000_000_123;
  await db.sql`select resilience.breaker_publish('host-a', 'open', ${until}, 'iso-1')`;
  await db.sql`select resilience.breaker_publish('host-b', 'open', ${until}, 'iso-1')`;
  await db.sql`select resilience.breaker_publish('host-b', 'closed', null, 'iso-2')`;
  const rows = await db.sql`
    select * from resilience.breaker_read(array['host-a', 'host-b', 'missing']) order by key`;
  assert.equal(rows.length, 2);
  assert.equal(rows[0]!.state, "open");
  assert.equal(Math.round(rows[0]!.open_until_ms), until);
  assert.equal(rows[1]!.state, "closed");
  assert.equal(rows[1]!.open_until_ms, null);
  assert.equal(rows[1]!.updated_by, "iso-2");
  await assert.rejects(db.sql`select resilience.breaker_publish('h', 'open', null, 'i')`);
});
