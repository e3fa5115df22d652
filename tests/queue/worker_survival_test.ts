/**
 * A queue-worker that survives the platform (docs/queue.md, "Surviving the platform"):
 * - `beforeunload` (any reason) stops the drain: nothing more is claimed, finished
 *   jobs are acknowledged, jobs not started go back without spending attempts;
 *   running jobs go back too, with their attempt spent only when the runtime ran
 *   out of CPU or memory (they may be why);
 * - a job's lease follows its own timeout: after a SIGKILL, a 5 s job is claimed
 *   again by another worker soon after its own lease ends, not after the lease a
 *   30 s job needs. Kills follow progress (the job has started), never a timer.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import {
  createLogger,
  defineFunction,
  defineJob,
  enqueueMany,
  jobRegistry,
  leaseMsFor,
  readEnv,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";
import { queueWorkerSpec } from "../../supabase/functions/queue-worker/spec.ts";
import { freshDatabase } from "../_harness/database.ts";
import { makeProject } from "../_harness/keys.ts";

/** Only ever fails the test (a hung drain must end); it never decides what happens. */
const DEADLINE_MS = 120_000;

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function withDeadline<T>(what: string, p: Promise<T>, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fail = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
  });
  return Promise.race([p, fail]).finally(() => clearTimeout(timer));
}

for (
  const { reason, runningAttempts } of [
    { reason: "wall_clock", runningAttempts: 0 },
    { reason: "termination", runningAttempts: 0 },
    { reason: "early_drop", runningAttempts: 0 },
    { reason: "memory", runningAttempts: 1 },
    { reason: "cpu", runningAttempts: 1 },
  ]
) {
  Deno.test(`beforeunload (${reason}): stop claiming, flush, hand back without spending attempts`, async () => {
    await using db = await freshDatabase();
    const project = await makeProject({ SUPABASE_DB_URL: db.url });
    const env: Record<string, string> = project.env;
    const bothHolding = deferred();
    let holding = 0;
    const quick = defineJob({ type: "quick", schema: z.object({}), handler: () => {} });
    // Parks until the worker aborts it; resolves `bothHolding` once two are running.
    const hold = defineJob({
      type: "hold",
      schema: z.object({ n: z.number() }),
      timeoutMs: 600_000,
      handler: (_p, { signal }) =>
        new Promise<void>((_, reject) => {
          if (++holding === 2) bothHolding.resolve();
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }),
    });
    const lines: string[] = [];
    const fn = defineFunction(queueWorkerSpec({ jobs: [quick, hold], concurrency: 3 }), {
      env: readEnv((k) => env[k]),
      log: createLogger("info", {}, (_l, line) => void lines.push(line)),
    });
    await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
    // Claim order is run_at order: the quick job, two holds, then jobs that wait
    // behind the holds (concurrency 3, so at most one slot is ever free).
    const at = (i: number) => new Date(Date.UTC(2020, 0, 1) + i);
    const ids = await enqueueMany(db.sql, [
      { job: quick, payload: {}, options: { runAt: at(0) } },
      { job: hold, payload: { n: 1 }, options: { runAt: at(1) } },
      { job: hold, payload: { n: 2 }, options: { runAt: at(2) } },
      ...Array.from({ length: 8 }, (_, i) => ({
        job: hold,
        payload: { n: 10 + i },
        options: { runAt: at(10 + i) },
      })),
    ]);
    const answer = fn.fetch(
      new Request("http://127.0.0.1/functions/v1/queue-worker", {
        method: "POST",
        headers: { "content-type": "application/json", apikey: project.cronSecret },
        body: JSON.stringify({ wait: true, budgetMs: 140_000 }),
      }),
    );
    await withDeadline("two running holds", bothHolding.promise, 60_000);
    // Three holds are running now (the quick job freed its slot); the rest wait.
    dispatchEvent(new CustomEvent("beforeunload", { detail: { reason } }));
    const res = await withDeadline("the drain to end after beforeunload", answer, 60_000);
    assert.equal(res.status, 200);
    const { data } = await res.json();
    assert.equal(data.stoppedBy, "shutdown");
    assert.equal(data.completed, 1, "the finished quick job was acknowledged");
    const rows = await db.sql<{ id: string; attempts: number; lease_token: string | null }[]>`
      select id, attempts, lease_token from queue.jobs order by id`;
    assert.equal(rows.length, ids.length - 1, "the quick job is gone; nothing else is");
    assert.ok(rows.every((r) => r.lease_token === null), "every job is back in the queue");
    const running = rows.filter((r) => r.attempts > 0);
    const spent = data.retried as number;
    if (runningAttempts === 0) {
      assert.deepEqual(running, [], "no attempt was spent");
      assert.equal(spent, 0);
    } else {
      assert.equal(spent, holding, "each running job spent its attempt");
      assert.equal(running.length, holding);
    }
    assert.equal(data.notStarted.shutdown + holding, data.claimed - 1, "the rest never started");
    assert.ok(
      lines.some((l) => l.includes("worker ending") && l.includes(`"reason":"${reason}"`)),
      "the reason is logged",
    );
    // The listener is gone with the drain: a later event touches nothing.
    dispatchEvent(new CustomEvent("beforeunload", { detail: { reason } }));
  });
}

Deno.test("lease per job: each type's own timeout plus a margin", async () => {
  await using db = await freshDatabase();
  const short = defineJob({
    type: "t5",
    schema: z.object({}),
    timeoutMs: 5_000,
    handler: () => {},
  });
  const long = defineJob({
    type: "t30",
    schema: z.object({}),
    timeoutMs: 30_000,
    handler: () => {},
  });
  await enqueueMany(db.sql, [{ job: short, payload: {} }, { job: long, payload: {} }]);
  const [row] = await db.sql<{ jobs: { job_type: string; lease_until: string }[] }[]>`
    select jobs from queue.ack_and_claim('{}', '{}', 'default', 10, 30, 'w', true,
      ${
    JSON.stringify({ t5: leaseMsFor(short) / 1000, t30: leaseMsFor(long) / 1000 })
  }::text::jsonb)`;
  const [now] = await db.sql<{ t: Date }[]>`select now() as t`;
  const leases = Object.fromEntries(
    row!.jobs.map((j) => [j.job_type, (Date.parse(j.lease_until) - now!.t.getTime()) / 1000]),
  );
  assert.ok(leases.t5! >= 5 && leases.t5! <= 7, `t5 lease ${leases.t5} s`);
  assert.ok(leases.t30! >= 30 && leases.t30! <= 35, `t30 lease ${leases.t30} s`);
  await assert.rejects(
    db.sql`select * from queue.claim('default', 1, 30, 'w', true, '{"t5": "soon"}'::jsonb)`,
    /lease_by_type/,
  );
});

Deno.test("a job that waited for a slot has its lease renewed before it starts", async () => {
  await using db = await freshDatabase();
  const release = deferred();
  const firstStarted = deferred();
  const starts: { id: number; leaseLeftMs: number }[] = [];
  // Holds the only slot until the short job's lease no longer covers a run.
  const blocker = defineJob({
    type: "blocker",
    schema: z.object({}),
    timeoutMs: 60_000,
    handler: async () => {
      firstStarted.resolve();
      await release.promise;
    },
  });
  // 1 s timeout: a lease of 2.1 s, so waiting ~1.5 s behind the blocker needs renewal.
  const job = defineJob({
    type: "short",
    schema: z.object({}),
    timeoutMs: 1_000,
    handler: async (_p, { id }) => {
      const [row] = await db.sql<{ left: number }[]>`
        select extract(epoch from lease_until - now()) * 1000 as left from queue.jobs
        where id = ${id}`;
      starts.push({ id, leaseLeftMs: Number(row!.left) });
    },
  });
  const at = (i: number) => new Date(Date.UTC(2020, 0, 1) + i);
  await enqueueMany(db.sql, [
    { job: blocker, payload: {}, options: { runAt: at(0) } },
    { job, payload: {}, options: { runAt: at(1) } },
  ]);
  const drain = runWorker({
    sql: db.sql,
    registry: jobRegistry([blocker, job]),
    concurrency: 1,
  });
  await withDeadline("the blocker", firstStarted.promise);
  // Wait (by the database's clock, not a sleep-then-assert) until the waiting
  // job's lease has less left than its timeout plus half its margin.
  await withDeadline(
    "the waiting job's lease to run short",
    (async () => {
      while (true) {
        const [r] = await db.sql<{ left: number }[]>`
          select extract(epoch from lease_until - now()) * 1000 as left
          from queue.jobs where job_type = 'short'`;
        if (Number(r!.left) < 1_000) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
  );
  release.resolve();
  const summary = await withDeadline("the drain", drain);
  assert.equal(summary.completed, 2);
  assert.equal(starts.length, 1);
  assert.ok(
    starts[0]!.leaseLeftMs >= 1_000,
    `the short job started with ${starts[0]!.leaseLeftMs} ms of lease left`,
  );
});

Deno.test("recovery after SIGKILL follows each job's own timeout (5 s and 30 s jobs)", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.survival_started (job_id bigint primary key)`;
  const t5 = defineJob({ type: "t5", schema: z.object({}), timeoutMs: 5_000, handler: () => {} });
  const t30 = defineJob({
    type: "t30",
    schema: z.object({}),
    timeoutMs: 30_000,
    handler: () => {},
  });
  const [id5, id30] = await enqueueMany(db.sql, [{ job: t5, payload: {} }, {
    job: t30,
    payload: {},
  }]);
  const script = new URL("./support/survival_worker.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, db.url],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const deadline = Date.now() + DEADLINE_MS;
  // The kill follows progress: both jobs have started in the child.
  while (true) {
    const [r] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from public.survival_started`;
    if (r!.n === 2) break;
    if (Date.now() > deadline) throw new Error("gave up waiting for the child to start both jobs");
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  await child.status;
  const killedAt = Date.now();
  const reclaimedAt = new Map<number, number>();
  const both = deferred();
  const stop = new AbortController();
  const record = (type: string, timeoutMs: number) =>
    defineJob({
      type,
      schema: z.object({}),
      timeoutMs,
      handler: (_p, { id }) => {
        reclaimedAt.set(id, Date.now());
        if (reclaimedAt.size === 2) both.resolve();
      },
    });
  // Another worker, polling like any idle listener.
  const other = runWorker({
    sql: db.sql,
    registry: jobRegistry([record("t5", 5_000), record("t30", 30_000)]),
    mode: "listen",
    pollMs: 100,
    signal: stop.signal,
  });
  try {
    await withDeadline("both jobs to be claimed again", both.promise);
  } finally {
    stop.abort();
    await other;
  }
  const recovery5 = reclaimedAt.get(id5!)! - killedAt;
  const recovery30 = reclaimedAt.get(id30!)! - killedAt;
  console.log(
    `recovery after SIGKILL: 5 s job ${recovery5} ms (lease ${leaseMsFor(t5)} ms), ` +
      `30 s job ${recovery30} ms (lease ${leaseMsFor(t30)} ms)`,
  );
  // Generous bounds that only catch a broken mechanism: one lease for the whole
  // registry (30 s x the batches held + 10 s = 130 s here) would miss both.
  assert.ok(recovery5 < 5_000 + 20_000, `5 s job recovered after ${recovery5} ms`);
  assert.ok(recovery30 < 30_000 + 30_000, `30 s job recovered after ${recovery30} ms`);
  assert.ok(recovery5 < recovery30, "the short job came back first");
});

Deno.test("shutdown hands back unstarted jobs at once, even while a handler ignores its signal", async () => {
  await using db = await freshDatabase();
  const stubbornStarted = deferred();
  const letGo = deferred();
  const stubborn = defineJob({
    type: "stubborn",
    schema: z.object({}),
    timeoutMs: 600_000,
    handler: async () => {
      stubbornStarted.resolve();
      await letGo.promise; // ignores its signal
    },
  });
  const later = defineJob({ type: "later", schema: z.object({}), handler: () => {} });
  const at = (i: number) => new Date(Date.UTC(2020, 0, 1) + i);
  await enqueueMany(db.sql, [
    { job: stubborn, payload: {}, options: { runAt: at(0) } },
    ...[1, 2, 3].map((i) => ({ job: later, payload: {}, options: { runAt: at(i) } })),
  ]);
  const stop = new AbortController();
  const drain = runWorker({
    sql: db.sql,
    registry: jobRegistry([stubborn, later]),
    concurrency: 1,
    batchSize: 4, // one claim takes all four: three wait behind the stubborn one
    signal: stop.signal,
  });
  await withDeadline("the stubborn job", stubbornStarted.promise);
  stop.abort();
  // Released while the stubborn handler still runs (the deadline only fails the test).
  await withDeadline(
    "the unstarted jobs to go back",
    (async () => {
      while (true) {
        const [r] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from queue.jobs
          where job_type = 'later' and lease_token is null and attempts = 0`;
        if (r!.n === 3) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    60_000,
  );
  letGo.resolve();
  const summary = await withDeadline("the drain", drain);
  assert.equal(summary.notStarted.shutdown, 3);
  assert.equal(summary.stoppedBy, "shutdown");
});
