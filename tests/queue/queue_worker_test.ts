/**
 * The TypeScript queue API on real Postgres: enqueue validation, the worker
 * loop, and the bad-input and fault list of the queue issue.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  defineJob,
  enqueue,
  enqueueMany,
  JobPayloadError,
  jobRegistry,
  PermanentJobError,
  QueueOptionsError,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";

const fast = { baseMs: 0, maxMs: 0 };
const countRows = async (sql: import("npm:postgres@3").Sql, table: string) =>
  (await sql.unsafe(`select count(*)::int as n from ${table}`))[0]!.n as number;

Deno.test("queue ts: enqueue validates payload and options before SQL", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "email.send",
    schema: z.object({ to: z.email(), n: z.number().int().optional() }),
    handler: () => {},
  });
  await assert.rejects(
    enqueue(db.sql, job, { to: "not-an-email" }),
    (e: unknown) => {
      assert.ok(e instanceof JobPayloadError);
      assert.equal(e.status, 422);
      assert.deepEqual(e.errors!.map((x) => x.pointer), ["/to"]);
      return true;
    },
  );
  const bad: [unknown, object][] = [
    [{ to: "a@b.co" }, { maxAttempts: -1 }],
    [{ to: "a@b.co" }, { maxAttempts: 0 }],
    [{ to: "a@b.co" }, { priority: 101 }],
    [{ to: "a@b.co" }, { priority: 1.5 }],
    [{ to: "a@b.co" }, { queue: "no spaces" }],
    [{ to: "a@b.co" }, { dedupeKey: "" }],
    [{ to: "a@b.co" }, { delayMs: -5 }],
    [{ to: "a@b.co" }, { runAt: new Date("nope") }],
    [["a@b.co"], {}],
    ["a@b.co", {}],
    [null, {}],
  ];
  for (const [payload, options] of bad) {
    await assert.rejects(
      enqueue(db.sql, job, payload as { to: string }, options),
      QueueOptionsError,
      JSON.stringify([payload, options]),
    );
  }
  assert.equal(await countRows(db.sql, "queue.jobs"), 0);
  const id = await enqueue(db.sql, job, { to: "a@b.co" }, { dedupeKey: "k", priority: 3 });
  assert.equal(await enqueue(db.sql, job, { to: "c@d.co" }, { dedupeKey: "k" }), id);
  const ids = await enqueueMany(db.sql, [
    { job, payload: { to: "x@y.co" } },
    { job, payload: { to: "z@y.co" }, options: { delayMs: 60_000, queue: "later" } },
  ]);
  assert.equal(ids.length, 2);
  const [row] = await db.sql`select queue_name, run_at > now() + interval '50 s' as delayed
    from queue.jobs where id = ${ids[1]!}`;
  assert.deepEqual([row!.queue_name, row!.delayed], ["later", true]);
});

Deno.test("queue ts: worker completes, retries, times out and dead-letters", async () => {
  await using db = await freshDatabase();
  const ran: string[] = [];
  let flakyRuns = 0;
  let timeoutSignal: AbortSignal | null = null;
  const registry = jobRegistry([
    defineJob({
      type: "ok",
      schema: z.object({ n: z.number() }),
      handler: ({ n }) => {
        ran.push(`ok${n}`);
      },
    }),
    defineJob({
      type: "flaky",
      schema: z.object({}),
      backoff: fast,
      handler: () => {
        if (++flakyRuns < 3) throw new Error(`flake ${flakyRuns}`);
      },
    }),
    defineJob({
      type: "always.throws",
      schema: z.object({}),
      maxAttempts: 2,
      backoff: fast,
      handler: () => {
        throw new TypeError("broken handler");
      },
    }),
    defineJob({
      type: "hangs",
      schema: z.object({}),
      maxAttempts: 1,
      timeoutMs: 150,
      handler: (_p, { signal }) => {
        timeoutSignal = signal;
        return new Promise(() => {});
      },
    }),
    defineJob({
      type: "permanent",
      schema: z.object({}),
      handler: () => {
        throw new PermanentJobError("recipient does not exist", { reason: "bad_recipient" });
      },
    }),
    defineJob({ type: "strict", schema: z.object({ id: z.uuid() }), handler: () => {} }),
  ]);
  // Inserted through SQL, as a trigger or another service would: no TS validation.
  await db.sql`select queue.enqueue_many(${
    db.sql.json([
      { job_type: "ok", payload: { n: 1 } },
      { job_type: "ok", payload: { n: 2 } },
      { job_type: "flaky" },
      { job_type: "always.throws" },
      { job_type: "hangs" },
      { job_type: "permanent" },
      { job_type: "strict", payload: { id: "not-a-uuid" } },
      { job_type: "no.such.type", payload: { x: 1 } },
    ])
  })`;
  const summary = await runWorker({ sql: db.sql, registry, concurrency: 4 });
  assert.deepEqual(ran.sort(), ["ok1", "ok2"]);
  assert.equal(flakyRuns, 3);
  assert.equal(summary.completed, 3);
  assert.equal(summary.deadLettered, 5);
  assert.equal(summary.retried, 3); // flaky twice, always.throws once
  assert.equal(summary.claimed, 2 + 3 + 2 + 1 + 1 + 1 + 1);
  assert.ok(timeoutSignal!.aborted, "the hung handler's signal was aborted");
  assert.equal(await countRows(db.sql, "queue.jobs"), 0);
  const dead = await db.sql`select job_type, reason, attempts, errors, last_error, payload
    from queue.dead_letters order by job_type`;
  const byType = Object.fromEntries(dead.map((d) => [d.job_type, d]));
  assert.equal(byType["always.throws"]!.reason, "attempts_exhausted");
  assert.equal(byType["always.throws"]!.errors.length, 2);
  assert.match(byType["always.throws"]!.last_error, /TypeError: broken handler/);
  assert.match(byType["hangs"]!.last_error, /timed out after 150 ms/);
  assert.equal(byType["permanent"]!.reason, "bad_recipient");
  assert.equal(byType["permanent"]!.attempts, 1);
  assert.equal(byType["strict"]!.reason, "invalid_payload");
  assert.match(byType["strict"]!.last_error, /\/id/);
  assert.equal(byType["no.such.type"]!.reason, "unknown_job_type");
  assert.deepEqual(byType["no.such.type"]!.payload, { x: 1 });
});

Deno.test("queue ts: two workers racing never run a job twice", async () => {
  await using db = await freshDatabase();
  const seen = new Map<number, number>();
  const job = defineJob({
    type: "race",
    schema: z.object({ i: z.number() }),
    handler: async ({ i }) => {
      seen.set(i, (seen.get(i) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, Math.random() * 2));
    },
  });
  const registry = jobRegistry([job]);
  await enqueueMany(db.sql, Array.from({ length: 600 }, (_, i) => ({ job, payload: { i } })));
  const [a, b] = await Promise.all([
    runWorker({ sql: db.sql, registry, concurrency: 8, batchSize: 25 }),
    runWorker({ sql: db.sql, registry, concurrency: 8, batchSize: 25 }),
  ]);
  assert.equal(seen.size, 600);
  assert.ok([...seen.values()].every((n) => n === 1));
  assert.equal(a!.completed + b!.completed, 600);
  assert.ok(a!.claimed > 0 && b!.claimed > 0, "both workers took part");
});

Deno.test("queue ts: a stale worker's ack after its lease was reclaimed changes nothing", async () => {
  await using db = await freshDatabase();
  let runs = 0;
  let secondRunDone!: () => void;
  const secondRan = new Promise<void>((r) => (secondRunDone = r));
  let firstStarted!: () => void;
  const firstRunning = new Promise<void>((r) => (firstStarted = r));
  const lostLease: boolean[] = [];
  const job = defineJob({
    type: "slow",
    schema: z.object({}),
    handler: async (_p, ctx) => {
      runs++;
      if (ctx.attempt === 1) {
        firstStarted();
        await secondRan; // held until another worker has reclaimed and finished it
        lostLease.push(await ctx.extendLease(10_000));
      } else {
        secondRunDone();
      }
    },
  });
  const registry = jobRegistry([job]);
  await enqueue(db.sql, job, {});
  // A poll interval longer than the test: the stale worker never claims again, so
  // it cannot reclaim its own expired job before the fresh worker does (that
  // race used to be decided by the stale worker's 1 s reclaim timer).
  const stale = runWorker({
    sql: db.sql,
    registry,
    leaseMs: 200,
    concurrency: 1,
    pollMs: 3_600_000,
  });
  // Only then the second worker: had it claimed first, it would hold the long lease.
  await firstRunning;
  // The second worker polls until the lease has expired, then reclaims the job.
  let fresh = await runWorker({ sql: db.sql, registry, concurrency: 1 });
  while (fresh.completed === 0) {
    await new Promise((r) => setTimeout(r, 50));
    fresh = await runWorker({ sql: db.sql, registry, concurrency: 1 });
  }
  const old = await stale;
  assert.equal(runs, 2);
  assert.equal(old.completed, 0, "the old token acknowledged nothing");
  assert.deepEqual(lostLease, [false], "extendLease reports the lost lease");
  assert.equal(fresh.completed, 1);
  assert.equal(await countRows(db.sql, "queue.jobs"), 0);
  assert.equal(await countRows(db.sql, "queue.dead_letters"), 0);
});

Deno.test("queue ts: a worker killed mid-batch has its jobs reclaimed and finished once", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "kill.me",
    schema: z.object({ n: z.number() }),
    handler: () => {},
  });
  await enqueueMany(db.sql, Array.from({ length: 8 }, (_, n) => ({ job, payload: { n } })));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./support/hang_worker.ts", import.meta.url).pathname,
      db.url,
      "400",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("claimed 5")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  child.kill("SIGKILL");
  await child.status;
  await reader.cancel();
  const [{ n: held }] = await db.sql`select count(*)::int as n from queue.jobs
    where lease_until is not null`;
  assert.equal(held, 5, "the killed worker held five leases");
  const done = new Map<number, number>();
  const registry = jobRegistry([defineJob({
    type: "kill.me",
    schema: z.object({ n: z.number() }),
    handler: ({ n }) => void done.set(n, (done.get(n) ?? 0) + 1),
  })]);
  while (done.size < 8) {
    await runWorker({ sql: db.sql, registry });
    if (done.size < 8) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok([...done.values()].every((c) => c === 1));
  assert.equal(await countRows(db.sql, "queue.jobs"), 0);
  const [{ n: dl }] = await db.sql`select count(*)::int as n from queue.dead_letters`;
  assert.equal(dl, 0);
});

Deno.test("queue ts: the budget stops claiming and releases unstarted jobs", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "slowish",
    schema: z.object({}),
    timeoutMs: 400,
    handler: () => new Promise((r) => setTimeout(r, 150)),
  });
  await enqueueMany(db.sql, Array.from({ length: 10 }, () => ({ job, payload: {} })));
  const s = await runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    concurrency: 1,
    batchSize: 10,
    budgetMs: 700,
  });
  assert.ok(s.released >= 1, JSON.stringify(s));
  assert.equal(s.claimed, s.completed + s.released);
  const [{ n, attempts }] = await db.sql`select count(*)::int as n,
    coalesce(max(attempts), 0)::int as attempts from queue.jobs where lease_until is null`;
  assert.equal(n, 10 - s.completed);
  assert.equal(attempts, 0, "released jobs did not spend an attempt");
});

Deno.test("queue ts: listen mode starts a job soon after it is enqueued", async () => {
  await using db = await freshDatabase();
  let started!: (at: number) => void;
  const ran = new Promise<number>((r) => (started = r));
  const job = defineJob({
    type: "ping",
    schema: z.object({ at: z.number() }),
    handler: () => started(performance.now()),
  });
  const stop = new AbortController();
  const worker = runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    mode: "listen",
    pollMs: 3_600_000, // only NOTIFY can wake it
    signal: stop.signal,
  });
  // Enqueue only once the worker has listened and made its first (empty) claim:
  // from then on nothing but NOTIFY can bring the job to it. Its sessions are
  // watched from a connection of our own, so our query does not hide theirs.
  const watch = postgres(db.url, { max: 1, onnotice: () => {} });
  const deadline = Date.now() + 60_000; // only fails a hung test
  try {
    while (true) {
      const [{ listening, claimed }] = await watch`select
        count(*) filter (where query ilike 'listen %') as listening,
        count(*) filter (where query like '%ack_and_claim%' and state = 'idle') as claimed
        from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
      if (Number(listening) > 0 && Number(claimed) > 0) break;
      assert.ok(Date.now() < deadline, "the worker listened and claimed");
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await watch.end();
  }
  await enqueue(db.sql, job, { at: performance.now() });
  // Generous: a missed NOTIFY would leave the job waiting an hour, not a minute.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const at = await Promise.race([
    ran,
    new Promise<null>((r) => timer = setTimeout(r, 60_000, null)),
  ]);
  clearTimeout(timer);
  stop.abort();
  const summary = await worker;
  assert.ok(at !== null, "NOTIFY woke the worker");
  assert.equal(summary.completed, 1);
});

Deno.test("queue ts: a drain ends as soon as the queue is empty, not a poll interval later", async () => {
  // Regression: jobs that finished while the last (empty) claim was in flight
  // left the loop waiting one pollMs before it noticed there was nothing left.
  await using db = await freshDatabase();
  let ran = 0;
  const noop = defineJob({
    type: "noop",
    schema: z.object({ i: z.number() }),
    handler: () => {
      ran++;
    },
  });
  await enqueueMany(
    db.sql,
    Array.from({ length: 1_000 }, (_, i) => ({ job: noop, payload: { i } })),
  );
  const pollMs = 30_000;
  const summary = await runWorker({
    sql: db.sql,
    registry: jobRegistry([noop]),
    concurrency: 10,
    batchSize: 100,
    pollMs,
  });
  assert.equal(summary.completed, 1_000);
  assert.equal(ran, 1_000);
  assert.ok(summary.durationMs < pollMs, `drain waited ${summary.durationMs} ms`);
});
