/**
 * queue.fail and queue.release as changed by
 * supabase/migrations/20261124003000_queue_attempts.sql, on real Postgres:
 * per-job max attempts, retry delay windows, delayed release (deferral).
 */
import assert from "node:assert/strict";
import type postgres from "npm:postgres@3";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
interface Claimed {
  id: string;
  payload: { k: number };
  attempts: number;
  max_attempts: number;
  lease_token: string;
}
interface Failed {
  id: string;
  outcome: string;
  run_at: Date | null;
  reason: string | null;
}

const claim = (sql: Sql, n = 100) => sql<Claimed[]>`select * from queue.claim('default', ${n}, 30)`;
const runnableNow = (sql: Sql) => sql`update queue.jobs set run_at = now()`;
const fail = (
  sql: Sql,
  jobs: Claimed[],
  o: { max?: (number | null)[]; lo?: number[]; hi?: number[]; retryable?: boolean } = {},
) =>
  sql<Failed[]>`select * from queue.fail(
    ${jobs.map((j) => j.id)}::bigint[], ${jobs.map((j) => j.lease_token)}::uuid[],
    ${jobs.map((_, i) => `boom ${i}`)}::text[],
    ${sql.array(jobs.map(() => o.retryable ?? true), 16)}::boolean[],
    max_attempts => ${o.max ?? null}::int[],
    delay_min_ms => ${o.lo ?? null}::float8[], delay_max_ms => ${o.hi ?? null}::float8[])`;
/** The delay each retried row got: run_at minus the instant its failure was recorded. */
const delays = (sql: Sql) =>
  sql<{ id: string; ms: number }[]>`
    select id, extract(epoch from run_at - (errors -> -1 ->> 'at')::timestamptz) * 1000 as ms
    from queue.jobs where lease_token is null order by id`;

Deno.test("queue.fail: the worker's max attempts beat the row's, and are written back", async () => {
  await using db = await freshDatabase();
  // Every row carries the SQL default (5); the worker passes these per job (null: none).
  const max = [7, null, 2, 0, 500];
  await db.sql`select queue.enqueue('t', jsonb_build_object('k', k)) from generate_series(0, 4) k`;
  for (let round = 1; round <= 8; round++) {
    const jobs = await claim(db.sql);
    await fail(db.sql, jobs, {
      max: jobs.map((j) => max[j.payload.k]!),
      lo: jobs.map(() => 0),
      hi: jobs.map(() => 0),
    });
    if (round === 1) {
      const rows = await db.sql`select payload->>'k' as k, max_attempts from queue.jobs order by 1`;
      assert.deepEqual(
        rows.map((r) => r.max_attempts),
        [7, 5, 2, 500].map((m) => Math.min(m, 100)),
      );
    }
    await runnableNow(db.sql);
  }
  const dead = await db.sql`select payload->>'k' as k, attempts, max_attempts, reason,
    jsonb_array_length(errors) as n from queue.dead_letters order by 1`;
  assert.deepEqual(dead.map((d) => [d.k, d.attempts, d.max_attempts, d.n]), [
    ["0", 7, 7, 7],
    ["1", 5, 5, 5],
    ["2", 2, 2, 2],
    ["3", 1, 1, 1], // 0 clamps to 1
  ]);
  assert.ok(dead.every((d) => d.reason === "attempts_exhausted"));
  const [live] = await db.sql`select payload->>'k' as k, attempts, max_attempts from queue.jobs`;
  assert.deepEqual(
    [live!.k, live!.attempts, live!.max_attempts],
    ["4", 8, 100],
    "500 clamps to 100",
  );
});

Deno.test("queue.fail: a retry waits within the window the worker passes", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue('t') from generate_series(1, 60)`;
  const jobs = await claim(db.sql);
  const out = await fail(db.sql, jobs, { lo: jobs.map(() => 4_500), hi: jobs.map(() => 5_500) });
  assert.ok(out.every((r) => r.outcome === "retried" && r.reason === null));
  const ms = (await delays(db.sql)).map((d) => d.ms);
  assert.equal(ms.length, 60);
  assert.ok(ms.every((d) => d >= 4_500 - 0.01 && d <= 5_500 + 0.01), String(ms));
  assert.ok(Math.max(...ms) - Math.min(...ms) > 100, "jitter spreads the retries");
  // Degenerate windows: exact, reversed, negative, NaN and absurd ones stay in 0 .. 1 year.
  await runnableNow(db.sql);
  const six = (await claim(db.sql, 6)).sort((a, b) => Number(a.id) - Number(b.id));
  await fail(db.sql, six, {
    lo: [1_000, 2_000, -50, NaN, 1e300, 300],
    hi: [1_000, 1_000, -10, NaN, 1e300, NaN],
  });
  const got = new Map((await delays(db.sql)).map((d) => [d.id, d.ms]));
  const year = 365 * 86_400_000;
  const byJob = six.map((j) => got.get(j.id)!);
  assert.ok(Math.abs(byJob[0]! - 1_000) < 0.01, "exact window");
  assert.ok(Math.abs(byJob[1]! - 2_000) < 0.01, "a reversed window takes its lower bound");
  assert.ok(Math.abs(byJob[2]!) < 0.01, "negative delays become 0");
  assert.ok(byJob.slice(3).every((d) => d >= 0 && d <= year + 1), String(byJob));
});

Deno.test("queue.fail: without windows or limits it keeps the row's limit and exponential backoff", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue('t', max_attempts => 2)`;
  let [job] = await claim(db.sql);
  const [first] = await db.sql<Failed[]>`select * from queue.fail(${[job!.id]}::bigint[],
    ${[job!.lease_token]}::uuid[], ${["e1"]}::text[], null, null, ${[1000]}::int[], ${[
    1000,
  ]}::int[])`;
  assert.equal(first!.outcome, "retried");
  const [{ ms }] = await delays(db.sql);
  assert.ok(ms! >= 0 && ms! <= 1_000 + 0.01);
  await runnableNow(db.sql);
  [job] = await claim(db.sql);
  const [second] = await db.sql<Failed[]>`select * from queue.fail(${[job!.id]}::bigint[],
    ${[job!.lease_token]}::uuid[], ${["e2"]}::text[])`;
  assert.deepEqual([second!.outcome, second!.reason], ["dead_lettered", "attempts_exhausted"]);
  const [stale] = await db.sql`select count(*)::int as n from queue.fail(${[job!.id]}::bigint[],
    ${[job!.lease_token]}::uuid[], ${["again"]}::text[])`;
  assert.equal(stale!.n, 0, "a token that no longer matches changes nothing");
});

Deno.test("queue.release: delays defer a job without spending its attempt", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue('t', jsonb_build_object('k', k)) from generate_series(0, 3) k`;
  const jobs = (await claim(db.sql)).sort((a, b) => a.payload.k - b.payload.k);
  assert.ok(jobs.every((j) => j.attempts === 1));
  const wrong = await db.sql`select queue.release(${[jobs[0]!.id]}::bigint[],
    ${[crypto.randomUUID()]}::uuid[], ${[60_000]}::float8[]) as n`;
  assert.equal(wrong[0]!.n, 0, "a wrong token releases nothing");
  const [{ n }] = await db.sql`select queue.release(${jobs.map((j) => j.id)}::bigint[],
    ${jobs.map((j) => j.lease_token)}::uuid[], ${[60_000, 0, -5, 1e12]}::float8[]) as n`;
  assert.equal(n, 4);
  const rows = await db.sql`select payload->>'k' as k, attempts, lease_token,
    extract(epoch from run_at - now()) * 1000 as ms from queue.jobs order by 1`;
  assert.ok(rows.every((r) => r.attempts === 0 && r.lease_token === null));
  const ms = rows.map((r) => r.ms as number);
  assert.ok(ms[0]! > 55_000 && ms[0]! <= 60_000, `deferred 60 s: ${ms[0]}`);
  assert.ok(ms[1]! <= 0 && ms[2]! <= 0, "zero and negative delays: runnable now");
  assert.ok(ms[3]! > 86_000_000 && ms[3]! <= 86_400_000, "capped at a day");
  assert.equal((await claim(db.sql)).length, 2, "only the undeferred jobs are claimable");
  // The two-argument form still works: released at once.
  const again = await db.sql<Claimed[]>`select * from queue.jobs where lease_token is not null`;
  const [{ m }] = await db.sql`select queue.release(${again.map((j) => j.id)}::bigint[],
    ${again.map((j) => j.lease_token)}::uuid[]) as m`;
  assert.equal(m, 2);
});

Deno.test("queue.fail / queue.release: one signature each, service_role only, definer with empty search_path", async () => {
  await using db = await freshDatabase();
  const fns = await db.sql`select p.proname, p.prosecdef, p.proconfig,
      has_function_privilege('anon', p.oid, 'execute') as anon,
      has_function_privilege('authenticated', p.oid, 'execute') as authed,
      has_function_privilege('service_role', p.oid, 'execute') as service
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'queue' and p.proname in ('fail', 'release') order by 1`;
  assert.deepEqual(fns.map((f) => f.proname), ["fail", "release"]);
  for (const f of fns) {
    assert.ok(f.prosecdef, f.proname);
    assert.deepEqual(f.proconfig, ['search_path=""'], f.proname);
    assert.deepEqual([f.anon, f.authed, f.service], [false, false, true], f.proname);
  }
});
