/**
 * The queue's SQL API on real Postgres: every function of
 * supabase/migrations/20261124001001_queue_functions.sql is run here.
 */
import assert from "node:assert/strict";
import type postgres from "npm:postgres@3";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;
interface Claimed {
  id: string;
  job_type: string;
  payload: Record<string, unknown>;
  attempts: number;
  lease_token: string;
  priority: number;
}

const claim = (sql: Sql, queue = "default", n = 100, lease = 30) =>
  sql<Claimed[]>`select * from queue.claim(${queue}, ${n}, ${lease}, 'test')`;
const complete = async (sql: Sql, jobs: { id: string; lease_token: string }[]) =>
  (await sql`select queue.complete(${jobs.map((j) => j.id)}::bigint[],
    ${jobs.map((j) => j.lease_token)}::uuid[]) as n`)[0]!.n as number;
const fail = (
  sql: Sql,
  jobs: { id: string; lease_token: string }[],
  opts: { retryable?: boolean; base?: number; cap?: number; reason?: string } = {},
) =>
  sql<{ id: string; outcome: string; run_at: Date | null }[]>`
    select * from queue.fail(${jobs.map((j) => j.id)}::bigint[],
      ${jobs.map((j) => j.lease_token)}::uuid[], ${jobs.map((_, i) => `boom ${i}`)}::text[],
      ${sql.array(jobs.map(() => opts.retryable ?? true), 16)}::boolean[],
      ${jobs.map(() => opts.reason ?? null)}::text[],
      ${jobs.map(() => opts.base ?? 1000)}::int[], ${jobs.map(() => opts.cap ?? 3600000)}::int[])`;
const enqueue = async (sql: Sql, type: string, payload: unknown = {}, extra = "") =>
  (await sql.unsafe(`select queue.enqueue($1, $2::jsonb${extra}) as id`, [
    type,
    payload as postgres.JSONValue,
  ]))[0]!.id as string;
/** Makes every job runnable now (skips backoff without waiting). */
const runnableNow = (sql: Sql) => sql`update queue.jobs set run_at = now() - interval '1 ms'`;

Deno.test("queue sql: enqueue, claim, complete removes the row", async () => {
  await using db = await freshDatabase();
  const id = await enqueue(db.sql, "email.send", { to: "a@example.com" });
  const [job] = await claim(db.sql);
  assert.equal(job!.id, id);
  assert.deepEqual(job!.payload, { to: "a@example.com" });
  assert.equal(job!.attempts, 1);
  assert.equal((await claim(db.sql)).length, 0, "a leased job is not claimed again");
  assert.equal(await complete(db.sql, [job!]), 1);
  const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(n, 0);
});

Deno.test("queue sql: enqueue rejects bad options with 22023 and writes nothing", async () => {
  await using db = await freshDatabase();
  const bad: [string, unknown, string][] = [
    ["t", [1, 2], ""],
    ["t", "text", ""],
    ["t", {}, ", priority => 101"],
    ["t", {}, ", priority => -101"],
    ["t", {}, ", max_attempts => 0"],
    ["t", {}, ", max_attempts => -3"],
    ["", {}, ""],
    ["t", {}, ", queue_name => 'bad name!'"],
    ["t", {}, ", dedupe_key => ''"],
  ];
  for (const [type, payload, extra] of bad) {
    await assert.rejects(enqueue(db.sql, type, payload, extra), (e: { code?: string }) => {
      assert.equal(e.code, "22023", `${type} ${JSON.stringify(payload)} ${extra}`);
      return true;
    });
  }
  await assert.rejects(db.sql`select * from queue.enqueue_many(${db.sql.json({ a: 1 })})`);
  await assert.rejects(
    db.sql`select * from queue.enqueue_many(${
      db.sql.json([{ job_type: "ok" }, {
        job_type: "x",
        priority: 500,
      }])
    })`,
    /priority/,
  );
  const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(n, 0, "a batch with one bad element inserts nothing");
});

Deno.test("queue sql: dedupe_key returns the live job, frees up after completion", async () => {
  await using db = await freshDatabase();
  const a = await enqueue(db.sql, "t", { n: 1 }, ", dedupe_key => 'k1'");
  const b = await enqueue(db.sql, "t", { n: 2 }, ", dedupe_key => 'k1'");
  assert.equal(b, a);
  const other = await enqueue(db.sql, "t", {}, ", dedupe_key => 'k1', queue_name => 'other'");
  assert.notEqual(other, a, "keys are per queue");
  const batch = await db.sql`select id from queue.enqueue_many(${
    db.sql.json([
      { job_type: "t", dedupe_key: "k1" },
      { job_type: "t", dedupe_key: "k2" },
      { job_type: "t" },
      { job_type: "t", dedupe_key: "k2" },
    ])
  })`;
  const ids = batch.map((r) => r.id);
  assert.equal(ids[0], a);
  assert.equal(ids[3], ids[1], "duplicate within a batch resolves to the first");
  assert.equal(new Set(ids).size, 3);
  const [job] = await claim(db.sql, "default", 1);
  assert.equal(job!.id, a);
  await complete(db.sql, [job!]);
  const again = await enqueue(db.sql, "t", {}, ", dedupe_key => 'k1'");
  assert.notEqual(again, a, "a completed job no longer holds its key");
});

Deno.test("queue sql: priority, run_at and named queues order the claim", async () => {
  await using db = await freshDatabase();
  const low = await enqueue(db.sql, "t", {}, ", priority => -5");
  const high = await enqueue(db.sql, "t", {}, ", priority => 10");
  const normal = await enqueue(db.sql, "t");
  const later = await enqueue(db.sql, "t", {}, ", run_at => now() + interval '1 hour'");
  const elsewhere = await enqueue(db.sql, "t", {}, ", queue_name => 'mail'");
  const got = await claim(db.sql, "default", 10);
  assert.deepEqual(got.map((j) => j.id), [high, normal, low]);
  assert.ok(!got.some((j) => j.id === later), "future jobs wait");
  const mail = await claim(db.sql, "mail", 10);
  assert.deepEqual(mail.map((j) => j.id), [elsewhere]);
  await db.sql`update queue.jobs set run_at = now() where id = ${later}`;
  assert.deepEqual((await claim(db.sql)).map((j) => j.id), [later]);
});

Deno.test("queue sql: concurrent claims never return the same job", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue_many(${
    db.sql.json(Array.from({ length: 300 }, (_, i) => ({ job_type: "t", payload: { i } })))
  })`;
  const results = await Promise.all(Array.from({ length: 4 }, () => claim(db.sql, "default", 50)));
  const ids = results.flat().map((j) => j.id);
  assert.equal(ids.length, 200);
  assert.equal(new Set(ids).size, 200);
});

Deno.test("queue sql: stale fencing token changes nothing after reclaim", async () => {
  await using db = await freshDatabase();
  await enqueue(db.sql, "t");
  const [first] = await claim(db.sql, "default", 1, 30);
  await db.sql`update queue.jobs set lease_until = now() - interval '1 s'`; // lease runs out
  const [second] = await claim(db.sql, "default", 1, 30); // reclaims, then claims again
  assert.equal(second!.id, first!.id);
  assert.equal(second!.attempts, 2);
  assert.notEqual(second!.lease_token, first!.lease_token);
  assert.equal(await complete(db.sql, [first!]), 0);
  assert.equal((await fail(db.sql, [first!])).length, 0);
  const ext = await db.sql`select * from queue.extend_lease(${[first!.id]}::bigint[],
    ${[first!.lease_token]}::uuid[], 60)`;
  assert.equal(ext.length, 0);
  const [row] = await db.sql`select lease_token, attempts, errors from queue.jobs`;
  assert.equal(row!.lease_token, second!.lease_token);
  assert.equal(row!.errors[0].error, "lease expired");
  assert.equal(await complete(db.sql, [second!]), 1);
});

Deno.test("queue sql: fail retries with capped exponential backoff and full jitter", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue_many(${
    db.sql.json(Array.from({ length: 60 }, () => ({ job_type: "t", max_attempts: 10 })))
  })`;
  const bounds = [1000, 2000, 4000, 4000]; // base 1000, doubling, capped at 4000
  for (const bound of bounds) {
    await runnableNow(db.sql);
    const jobs = await claim(db.sql, "default", 100);
    assert.equal(jobs.length, 60);
    // One transaction, so `now` is the instant fail() schedules from: the delays
    // are the jitter alone, with no slack for a slow round trip in between.
    const { now, out } = await db.sql.begin(async (tx) => {
      const [{ now }] = await tx`select now() as now`;
      return {
        now: now as Date,
        out: await fail(tx as unknown as Sql, jobs, { base: 1000, cap: 4000 }),
      };
    });
    assert.ok(out.every((r) => r.outcome === "retried"));
    const delays = out.map((r) => r.run_at!.getTime() - now.getTime());
    // run_at and now are whole milliseconds here: a 1 ms rounding either way.
    assert.ok(delays.every((d) => d >= -1 && d <= bound + 1), `bound ${bound}: ${delays}`);
    assert.ok(Math.max(...delays) - Math.min(...delays) > bound / 10, "jitter spreads retries");
  }
  const [row] = await db
    .sql`select attempts, jsonb_array_length(errors) as n from queue.jobs limit 1`;
  assert.deepEqual([row!.attempts, row!.n], [4, 4]);
});

Deno.test("queue sql: spent attempts and non-retryable errors dead-letter with history", async () => {
  await using db = await freshDatabase();
  const a = await enqueue(
    db.sql,
    "t",
    { keep: "me" },
    ", max_attempts => 2, dedupe_key => 'd', priority => 5",
  );
  const b = await enqueue(db.sql, "t", { x: 1 });
  let [job] = await claim(db.sql, "default", 1);
  assert.equal((await fail(db.sql, [job!], { base: 0 }))[0]!.outcome, "retried");
  [job] = await claim(db.sql, "default", 1);
  assert.equal(job!.id, a);
  const out = await fail(db.sql, [job!], { base: 0 });
  assert.deepEqual(out.map((r) => r.outcome), ["dead_lettered"]);
  const [jb] = await claim(db.sql, "default", 1);
  assert.equal(jb!.id, b);
  await fail(db.sql, [jb!], { retryable: false, reason: "invalid_payload" });
  const dead = await db.sql`select * from queue.dead_letters order by id`;
  assert.equal(dead.length, 2);
  assert.deepEqual(dead[0]!.payload, { keep: "me" });
  assert.equal(dead[0]!.attempts, 2);
  assert.equal(dead[0]!.reason, "attempts_exhausted");
  assert.equal(dead[0]!.dedupe_key, "d");
  assert.deepEqual(dead[0]!.errors.map((e: { attempt: number }) => e.attempt), [1, 2]);
  assert.equal(dead[1]!.reason, "invalid_payload");
  assert.equal(dead[1]!.attempts, 1, "non-retryable: dead after one attempt of five");
  const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(n, 0);
});

Deno.test("queue sql: expired leases are reclaimed, or dead-lettered when spent", async () => {
  await using db = await freshDatabase();
  await enqueue(db.sql, "t", {}, ", max_attempts => 1");
  await enqueue(db.sql, "t", {}, ", max_attempts => 3");
  const jobs = await claim(db.sql, "default", 10);
  assert.equal(jobs.length, 2);
  await db.sql`update queue.jobs set lease_until = now() - interval '1 s'`;
  const [{ n }] = await db.sql`select queue.reclaim_expired() as n`;
  assert.equal(n, 2);
  const [dl] = await db.sql`select * from queue.dead_letters`;
  assert.equal(dl!.reason, "lease_expired");
  assert.equal(dl!.errors[0].error, "lease expired");
  const [row] = await db.sql`select lease_until, lease_token from queue.jobs`;
  assert.equal(row!.lease_until, null);
  assert.equal(row!.lease_token, null);
});

Deno.test("queue sql: extend_lease keeps a long job from being reclaimed", async () => {
  await using db = await freshDatabase();
  await enqueue(db.sql, "t");
  const [job] = await claim(db.sql, "default", 1, 1);
  const [ext] = await db.sql`select * from queue.extend_lease(${[job!.id]}::bigint[],
    ${[job!.lease_token]}::uuid[], 600)`;
  assert.ok((ext!.lease_until as Date).getTime() > Date.now() + 500_000);
  const [{ n }] = await db.sql`select queue.reclaim_expired() as n`;
  assert.equal(n, 0);
  assert.equal(await complete(db.sql, [job!]), 1);
});

Deno.test("queue sql: ack_and_claim acknowledges and claims in one call", async () => {
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue_many(${
    db.sql.json(Array.from({ length: 5 }, (_, i) => ({ job_type: "t", payload: { i } })))
  })`;
  const [first] = await db.sql`select * from queue.ack_and_claim('{}', '{}', 'default', 3)`;
  assert.equal(first!.acked, 0);
  assert.equal(first!.jobs.length, 3);
  const ids = first!.jobs.map((j: { id: number }) => j.id);
  const tokens = first!.jobs.map((j: { lease_token: string }) => j.lease_token);
  const [second] = await db.sql`select * from queue.ack_and_claim(${ids}::bigint[],
    ${tokens}::uuid[], 'default', 3)`;
  assert.equal(second!.acked, 3);
  assert.equal(second!.jobs.length, 2);
  await assert.rejects(db.sql`select * from queue.claim('default', 0)`, /max_jobs/);
});

Deno.test("queue sql: requeue_dead_letter brings a job back under its id", async () => {
  await using db = await freshDatabase();
  const id = await enqueue(db.sql, "t", { p: 1 }, ", max_attempts => 1, dedupe_key => 'r'");
  const [job] = await claim(db.sql);
  await fail(db.sql, [job!]);
  const [{ requeued }] = await db.sql`select queue.requeue_dead_letter(${id}) as requeued`;
  assert.equal(requeued, id);
  const [row] = await db.sql`select attempts, errors, payload from queue.jobs where id = ${id}`;
  assert.equal(row!.attempts, 0);
  assert.equal(row!.errors.length, 1, "history kept");
  assert.equal((await db.sql`select count(*)::int as n from queue.dead_letters`)[0]!.n, 0);
  await assert.rejects(db.sql`select queue.requeue_dead_letter(${id})`, /no dead letter/);
  // A live job holding the key blocks the requeue, and the dead letter stays.
  const [again] = await claim(db.sql);
  await fail(db.sql, [again!]);
  await enqueue(db.sql, "t", {}, ", dedupe_key => 'r'");
  await assert.rejects(db.sql`select queue.requeue_dead_letter(${id})`);
  assert.equal((await db.sql`select count(*)::int as n from queue.dead_letters`)[0]!.n, 1);
});

Deno.test("queue sql: stats reports depth per queue and state", async () => {
  await using db = await freshDatabase();
  await enqueue(db.sql, "t");
  await enqueue(db.sql, "t");
  await enqueue(db.sql, "t", {}, ", run_at => now() + interval '1 day'");
  await enqueue(db.sql, "t", {}, ", queue_name => 'mail', max_attempts => 1");
  await claim(db.sql, "default", 1);
  const [m] = await claim(db.sql, "mail", 1);
  await fail(db.sql, [m!]);
  await db.sql`update queue.jobs set run_at = now() - interval '10 s'
    where lease_until is null and run_at <= now()`;
  const rows = await db.sql`select * from queue.stats()`;
  assert.equal(rows.length, 2);
  const d = rows.find((r) => r.queue_name === "default")!;
  assert.deepEqual(
    [d.runnable, d.scheduled, d.running, d.expired, d.dead_letters].map(Number),
    [1, 1, 1, 0, 0],
  );
  assert.ok(d.oldest_runnable_age_seconds >= 9);
  const mail = rows.find((r) => r.queue_name === "mail")!;
  assert.equal(Number(mail.dead_letters), 1);
});

Deno.test("queue sql: only service_role reaches the queue", async () => {
  await using db = await freshDatabase();
  for (const role of ["anon", "authenticated"]) {
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx`select queue.enqueue('t')`;
      }),
      /permission denied/,
      role,
    );
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx`select * from queue.jobs`;
      }),
      /permission denied/,
    );
  }
  const id = await db.sql.begin(async (tx) => {
    await tx.unsafe("set local role service_role");
    const [r] = await tx`select queue.enqueue('t') as id`;
    const [c] = await tx`select * from queue.claim()`;
    await tx`select queue.complete(${[c!.id]}::bigint[], ${[c!.lease_token]}::uuid[])`;
    return r!.id;
  });
  assert.ok(id);
  const defs = await db.sql`
    select p.proname, p.prosecdef, p.proconfig from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'queue'`;
  for (const f of defs) {
    assert.ok(f.prosecdef, `${f.proname} is security definer`);
    assert.deepEqual(f.proconfig, ['search_path=""'], `${f.proname} pins search_path`);
  }
});

Deno.test("queue sql: outbox trigger enqueues row changes in the writer's transaction", async () => {
  await using db = await freshDatabase();
  const user = crypto.randomUUID();
  const asUser = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) =>
    db.sql.begin(async (tx) => {
      await tx.unsafe("set local role authenticated");
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: user })}, true)`;
      return await fn(tx);
    });
  const [note] = await asUser((tx) =>
    tx`insert into public.notes (body) values ('hi') returning id`
  );
  await asUser((tx) => tx`update public.notes set body = 'edited' where id = ${note!.id}`);
  // A rolled-back write leaves no job behind.
  await assert.rejects(asUser(async (tx) => {
    await tx`insert into public.notes (body) values ('rolled back')`;
    throw new Error("abort");
  }));
  const jobs = await db.sql`select job_type, payload from queue.jobs order by id`;
  assert.deepEqual(jobs.map((j) => [j.job_type, j.payload.type]), [
    ["notes.changed", "INSERT"],
    ["notes.changed", "UPDATE"],
  ]);
  assert.equal(jobs[0]!.payload.record.body, "hi");
  assert.equal(jobs[0]!.payload.old_record, null);
  assert.equal(jobs[1]!.payload.old_record.body, "hi");
  assert.equal(jobs[1]!.payload.record.body, "edited");
  assert.equal(jobs[1]!.payload.table, "notes");
  assert.equal(jobs[1]!.payload.schema, "public");
});

Deno.test("queue sql: outbox trigger works for any table and honours the queue argument", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.t_outbox (id int primary key, v text)`;
  await db.sql`create trigger t_outbox_jobs after delete on public.t_outbox
    for each row execute function queue.enqueue_row_change('t.deleted', 'outbox')`;
  await db.sql`insert into public.t_outbox values (1, 'a'), (2, 'b')`;
  await db.sql`delete from public.t_outbox`;
  const jobs = await db.sql`select queue_name, payload from queue.jobs order by id`;
  assert.equal(jobs.length, 2);
  assert.ok(jobs.every((j) => j.queue_name === "outbox" && j.payload.record === null));
  assert.deepEqual(jobs.map((j) => j.payload.old_record.v).sort(), ["a", "b"]);
  await db.sql`create table public.t_bad (id int)`;
  await db.sql`create trigger t_bad_jobs after insert on public.t_bad
    for each row execute function queue.enqueue_row_change()`;
  await assert.rejects(db.sql`insert into public.t_bad values (1)`, /job type/);
});

Deno.test("queue sql: release hands jobs back without spending an attempt", async () => {
  await using db = await freshDatabase();
  await enqueue(db.sql, "t");
  const [job] = await claim(db.sql);
  const [{ n }] = await db.sql`select queue.release(${[job!.id]}::bigint[],
    ${["00000000-0000-0000-0000-000000000000"]}::uuid[]) as n`;
  assert.equal(n, 0, "a wrong token releases nothing");
  const [{ m }] = await db.sql`select queue.release(${[job!.id]}::bigint[],
    ${[job!.lease_token]}::uuid[]) as m`;
  assert.equal(m, 1);
  const [again] = await claim(db.sql);
  assert.equal(again!.attempts, 1);
});

Deno.test("queue sql: the cron migration skips cleanly without pg_cron/pg_net/vault", async () => {
  await using db = await freshDatabase();
  const [{ n }] = await db.sql`select count(*)::int as n from supabase_migrations.schema_migrations
    where version = '20261124001003'`;
  assert.equal(n, 1, "recorded as applied on vanilla Postgres");
  const notices: string[] = [];
  const { default: postgresJs } = await import("npm:postgres@3");
  const sql = postgresJs(db.url, { max: 1, onnotice: (m) => notices.push(m.message) });
  try {
    const file = new URL(
      "../../supabase/migrations/20261124001003_queue_cron.sql",
      import.meta.url,
    );
    await sql.unsafe(await Deno.readTextFile(file)).simple();
  } finally {
    await sql.end();
  }
  assert.ok(notices.some((m) => /not scheduled/.test(m)), notices.join("; "));
  const [{ ext }] = await db.sql`select count(*)::int as ext from pg_extension
    where extname in ('pg_cron', 'pg_net')`;
  assert.equal(ext, 0);
});
