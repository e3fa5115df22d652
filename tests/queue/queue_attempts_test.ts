/**
 * Attempts count real tries: a job type's maxAttempts beats the SQL default,
 * an open circuit breaker defers without spending an attempt (real breaker,
 * injected clock, loopback sink that fails then recovers), webhook retries last
 * a day, and every retry and dead letter is logged with its error.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import { z } from "npm:zod@4";
import {
  type BackoffPolicy,
  BreakerRegistry,
  createLogger,
  defineJob,
  enqueueMany,
  JOB_DEFAULTS,
  jobRegistry,
  retryWindow,
  runWorker,
  WEBHOOK_RETRY_SCHEDULE_MS,
  webhookDeliverJob,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";

const HOUR = 3_600_000;
const quiet = createLogger("error", {}, () => {});
/** Makes every waiting job runnable now: time travel for backoff and deferral. */
const runnableNow = (sql: import("npm:postgres@3").Sql) =>
  sql`update queue.jobs set run_at = now() where lease_token is null`;

Deno.test("attempts: a job type's maxAttempts beats the SQL default; ctx.maxAttempts reports it; each try is logged", async () => {
  await using db = await freshDatabase();
  const seen = new Map<number, [number, number][]>();
  const lines: Record<string, unknown>[] = [];
  const failing = (type: string, maxAttempts: number) =>
    defineJob({
      type,
      schema: z.object({}),
      maxAttempts,
      backoff: { baseMs: 0, maxMs: 0 },
      handler: (_p, ctx) => {
        seen.set(ctx.id, [...(seen.get(ctx.id) ?? []), [ctx.attempt, ctx.maxAttempts]]);
        throw new RangeError(`try ${ctx.attempt} of job ${ctx.id}`);
      },
    });
  const registry = jobRegistry([failing("seven", 7), failing("two", 2)]);
  // Enqueued from SQL, as a trigger would: rows carry the column default (5) unless told.
  const [{ id: seven }] = await db.sql`select queue.enqueue('seven') as id`;
  const [{ id: two }] = await db.sql`select queue.enqueue('two') as id`;
  const [{ id: chosen }] = await db.sql`select queue.enqueue('seven', max_attempts => 3) as id`;
  const s = await runWorker({
    sql: db.sql,
    registry,
    log: createLogger("info", {}, (_l, line) => lines.push(JSON.parse(line))),
  });
  const tries = (n: number) => Array.from({ length: n }, (_, i) => [i + 1, n] as [number, number]);
  assert.deepEqual(seen.get(Number(seven)), tries(7), "the type's 7, not the default 5");
  assert.deepEqual(seen.get(Number(two)), tries(2));
  assert.deepEqual(seen.get(Number(chosen)), tries(3), "a per-job choice still wins");
  assert.deepEqual([s.retried, s.deadLettered], [6 + 1 + 2, 3]);
  const dead = await db.sql`select id, attempts, max_attempts, jsonb_array_length(errors) as n
    from queue.dead_letters order by id`;
  assert.deepEqual(dead.map((d) => [d.attempts, d.max_attempts, d.n]), [[7, 7, 7], [2, 2, 2], [
    3,
    3,
    3,
  ]]);
  // One line per failed try, with id, type, attempt, reason and the error text.
  const retried = lines.filter((l) => l.msg === "job failed, retrying");
  const buried = lines.filter((l) => l.msg === "job dead-lettered");
  assert.equal(retried.length, 9);
  assert.equal(buried.length, 3);
  const last = buried.find((l) => l.jobId === Number(seven))!;
  assert.deepEqual([last.jobType, last.attempt, last.maxAttempts, last.reason], [
    "seven",
    7,
    7,
    "attempts_exhausted",
  ]);
  assert.equal(last.error, `RangeError: try 7 of job ${seven}`);
  const firstTry = retried.find((l) => l.jobId === Number(two))!;
  assert.deepEqual([firstTry.jobType, firstTry.attempt, firstTry.error], [
    "two",
    1,
    `RangeError: try 1 of job ${two}`,
  ]);
  assert.ok(typeof firstTry.runAt === "string");
});

Deno.test("attempts: webhook retries follow a schedule that lasts a day; the default cap is reached", () => {
  const webhook = webhookDeliverJob();
  const policy = webhook.backoff!;
  const retries = webhook.maxAttempts! - 1;
  assert.equal(retries, WEBHOOK_RETRY_SCHEDULE_MS.length);
  const windows = Array.from({ length: retries }, (_, i) => retryWindow(policy, i + 1));
  const least = windows.reduce((t, w) => t + w.minMs, 0);
  assert.ok(least >= 24 * HOUR, `retries span at least ${least / HOUR} h`);
  windows.forEach((w, i) => {
    const s = WEBHOOK_RETRY_SCHEDULE_MS[i]!;
    assert.ok(w.minMs >= 0.9 * s && w.maxMs <= 1.1 * s && w.minMs <= w.maxMs, `retry ${i + 1}`);
  });
  assert.ok(windows.slice(1).every((w, i) => w.minMs >= windows[i]!.minMs), "never shrinking");
  // The documented default cap is what the last default retry reaches, no more.
  const lastDefault = retryWindow(JOB_DEFAULTS.backoff, JOB_DEFAULTS.maxAttempts - 1);
  assert.equal(lastDefault.maxMs, JOB_DEFAULTS.backoff.maxMs);
  // Any valid policy and attempt: a finite window inside 0 .. its cap.
  const policies: fc.Arbitrary<BackoffPolicy> = fc.oneof(
    fc.record({ baseMs: fc.nat(1e7), maxMs: fc.nat(1e9) }),
    fc.record({
      scheduleMs: fc.array(fc.nat(1e9), { minLength: 1, maxLength: 10 }),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  );
  fc.assert(fc.property(policies, fc.integer({ min: 1, max: 200 }), (p, attempt) => {
    const w = retryWindow(p, attempt);
    assert.ok(Number.isFinite(w.minMs) && Number.isFinite(w.maxMs));
    assert.ok(0 <= w.minMs && w.minMs <= w.maxMs);
    if ("baseMs" in p) assert.ok(w.maxMs <= p.maxMs);
    else assert.ok(w.maxMs <= 2 * Math.max(...p.scheduleMs));
  }));
});

Deno.test("attempts: webhook.deliver enqueued from SQL gets its 8 tries, each retry's run_at on schedule", async () => {
  await using db = await freshDatabase();
  let hits = 0;
  await using sink = serve(() => {
    hits++;
    return new Response(null, { status: 500 });
  });
  // A breaker that never opens here: this test is about the schedule alone.
  const breakers = new BreakerRegistry({
    defaults: { policies: [{ kind: "consecutive", failures: 1_000 }] },
  });
  const webhook = webhookDeliverJob({
    allowHosts: ["127.0.0.1"],
    breakerFor: (h) => breakers.get(h),
  });
  await db.sql`select queue.enqueue('webhook.deliver', ${
    db.sql.json({ url: `${sink.url}/hook` })
  })`;
  const registry = jobRegistry([webhook]);
  for (let tryNo = 1; tryNo <= 8; tryNo++) {
    const s = await runWorker({ sql: db.sql, registry, log: quiet });
    assert.equal(hits, tryNo);
    if (tryNo === 8) {
      assert.equal(s.deadLettered, 1);
      break;
    }
    assert.equal(s.retried, 1, `try ${tryNo}`);
    const [row] = await db.sql`select attempts, max_attempts,
      extract(epoch from run_at - (errors -> -1 ->> 'at')::timestamptz) * 1000 as delay
      from queue.jobs`;
    const planned = WEBHOOK_RETRY_SCHEDULE_MS[tryNo - 1]!;
    assert.deepEqual([row!.attempts, row!.max_attempts], [tryNo, 8]);
    assert.ok(
      row!.delay >= 0.9 * planned - 1 && row!.delay <= 1.1 * planned + 1,
      `retry ${tryNo}: ${row!.delay} ms, planned ${planned} ms ± 10 %`,
    );
    await runnableNow(db.sql);
  }
  const [dead] = await db.sql`select attempts, max_attempts, reason,
    jsonb_array_length(errors) as n from queue.dead_letters`;
  assert.deepEqual([dead!.attempts, dead!.max_attempts, dead!.reason, dead!.n], [
    8,
    8,
    "attempts_exhausted",
    8,
  ]);
});

/** A loopback partner whose outage the test switches on and off; counts tries per path. */
function partner() {
  const hits = new Map<string, number>();
  const state = { down: true };
  const server = serve((req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    return new Response(null, { status: state.down ? 503 : 204 });
  });
  return { hits, state, server };
}

/** The rows' attempts must equal the requests the partner really received. */
async function assertAttemptsAreTries(
  sql: import("npm:postgres@3").Sql,
  hits: Map<string, number>,
  table: "queue.jobs" | "queue.dead_letters",
) {
  const rows = await sql.unsafe(
    `select payload->>'url' as url, attempts, jsonb_array_length(errors) as n from ${table}`,
  );
  for (const r of rows) {
    const tries = hits.get(new URL(r.url).pathname) ?? 0;
    assert.equal(r.attempts, tries, `${table} ${r.url}: attempts vs real tries`);
    assert.equal(r.n, tries, `${table} ${r.url}: one error per real try`);
  }
}

Deno.test("attempts: an open breaker defers deliveries through an outage; they arrive once the partner recovers", async () => {
  await using db = await freshDatabase();
  const { hits, state, server } = partner();
  await using _server = server;
  let clock = 1_700_000_000_000;
  const openMs = 60_000;
  const breakers = new BreakerRegistry(
    { defaults: { policies: [{ kind: "consecutive", failures: 2 }], openMs } },
    { now: () => clock },
  );
  const webhook = webhookDeliverJob({
    allowHosts: ["127.0.0.1"],
    breakerFor: (h) => breakers.get(h),
  });
  const registry = jobRegistry([webhook]);
  // From SQL (rows at the default 5 attempts), as an outbox trigger would enqueue them.
  await db.sql`select queue.enqueue('webhook.deliver',
    jsonb_build_object('url', ${server.url} || '/job/' || k)) from generate_series(1, 6) k`;
  let deferred = 0;
  // Six rounds of outage: more refusals per job than the SQL default of 5 attempts.
  for (let round = 1; round <= 12; round++) {
    if (round === 7) state.down = false;
    const s = await runWorker({ sql: db.sql, registry, concurrency: 1, log: quiet });
    deferred += s.deferred;
    assert.equal(s.deadLettered, 0, `round ${round}: nothing dead-lettered by refusals`);
    if (round === 1) {
      const rows = await db.sql`select attempts, extract(epoch from run_at - now()) * 1000 as ms
        from queue.jobs where attempts = 0`;
      assert.equal(rows.length, 4, "four jobs were refused, not tried");
      assert.ok(rows.every((r) => r.ms > openMs - 5_000 && r.ms <= openMs), "until half-open");
    }
    await assertAttemptsAreTries(db.sql, hits, "queue.jobs");
    const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
    if (n === 0) break;
    clock += openMs; // the breaker may half-open
    await runnableNow(db.sql);
  }
  const [{ left }] = await db.sql`select count(*)::int as left from queue.jobs`;
  const [{ dl }] = await db.sql`select count(*)::int as dl from queue.dead_letters`;
  assert.deepEqual([left, dl], [0, 0], "every delivery arrived");
  assert.ok(deferred >= 6 * 4, `refusals were deferrals (${deferred})`);
  assert.deepEqual([...hits.keys()].sort(), [1, 2, 3, 4, 5, 6].map((k) => `/job/${k}`));
  assert.ok([...hits.values()].every((n) => n <= 8), "no job needed more than its 8 tries");
});

Deno.test("attempts: when an outage outlasts the tries, dead letters count only real tries", async () => {
  await using db = await freshDatabase();
  const { hits, server } = partner(); // down for good
  await using _server = server;
  let clock = 1_700_000_000_000;
  const openMs = 30_000;
  const breakers = new BreakerRegistry(
    { defaults: { policies: [{ kind: "consecutive", failures: 2 }], openMs } },
    { now: () => clock },
  );
  const webhook = webhookDeliverJob({
    allowHosts: ["127.0.0.1"],
    breakerFor: (h) => breakers.get(h),
  });
  await enqueueMany(
    db.sql,
    [1, 2, 3].map((k) => ({
      job: webhook,
      payload: { url: `${server.url}/job/${k}` },
      options: { maxAttempts: 3 },
    })),
  );
  for (let round = 1; round <= 40; round++) {
    await runWorker({ sql: db.sql, registry: jobRegistry([webhook]), concurrency: 1, log: quiet });
    await assertAttemptsAreTries(db.sql, hits, "queue.jobs");
    const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
    if (n === 0) break;
    clock += openMs;
    await runnableNow(db.sql);
  }
  await assertAttemptsAreTries(db.sql, hits, "queue.dead_letters");
  const dead = await db.sql`select attempts, reason, last_error from queue.dead_letters`;
  assert.equal(dead.length, 3);
  assert.ok(dead.every((d) => d.attempts === 3 && d.reason === "attempts_exhausted"));
  assert.ok(dead.every((d) => /503/.test(d.last_error)), "the last error is a real try's");
});
