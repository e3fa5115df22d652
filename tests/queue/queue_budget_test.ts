/**
 * The worker's wall-clock budget (DESIGN §4.3): every budget the endpoint
 * accepts makes progress on runnable jobs whatever their timeouts; a job cut off
 * by the budget goes back without spending an attempt; the summary and the log
 * say why any job was not started. Through the real queue-worker endpoint (real
 * keys, real HTTP on loopback, real Postgres) and through runWorker.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import { z } from "npm:zod@4";
import {
  createLogger,
  defineFunction,
  defineJob,
  enqueue,
  enqueueMany,
  type JobDefinition,
  jobRegistry,
  readEnv,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";
import { BUDGET_RANGE_MS, queueWorkerSpec } from "../../supabase/functions/queue-worker/spec.ts";
import { freshDatabase, type TestDatabase } from "../_harness/database.ts";
import { makeProject } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

/** A handler that runs until its signal aborts (budget, timeout or shutdown), then rejects. */
const untilAborted = (started: () => void) => (_p: unknown, ctx: { signal: AbortSignal }) =>
  new Promise<never>((_, reject) => {
    started();
    ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
  });

async function workerEndpoint(db: TestDatabase, jobs: JobDefinition[], lines: string[]) {
  const project = await makeProject({ SUPABASE_DB_URL: db.url });
  const env: Record<string, string> = { ...project.env };
  const fn = defineFunction(queueWorkerSpec({ jobs }), {
    env: readEnv((k) => env[k]),
    log: createLogger("info", {}, (_level, line) => lines.push(line)),
  });
  const server = serve(fn.fetch);
  const post = async (body: unknown) => {
    const res = await fetch(`${server.url}/functions/v1/queue-worker`, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: project.cronSecret },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  return {
    post,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await fn.close();
    },
  };
}

Deno.test("queue-worker over HTTP: every accepted budget claims and completes runnable jobs", async () => {
  await using db = await freshDatabase();
  const ran: string[] = [];
  // One type at the default timeout (30 s), one whose timeout exceeds the largest budget.
  const jobs = [
    defineJob({
      type: "default.timeout",
      schema: z.object({ b: z.number() }),
      handler: ({ b }) => Promise.resolve().then(() => void ran.push(`d${b}`)),
    }),
    defineJob({
      type: "long.timeout",
      schema: z.object({ b: z.number() }),
      timeoutMs: 10 * BUDGET_RANGE_MS.max,
      handler: ({ b }) => Promise.resolve().then(() => void ran.push(`l${b}`)),
    }),
  ];
  const lines: string[] = [];
  await using endpoint = await workerEndpoint(db, jobs, lines);
  const check = async (budgetMs: number) => {
    ran.length = 0;
    await enqueueMany(db.sql, [
      ...[1, 2].map(() => ({ job: jobs[0]!, payload: { b: budgetMs } })),
      ...[1, 2].map(() => ({ job: jobs[1]!, payload: { b: budgetMs } })),
    ]);
    const { status, body } = await endpoint.post({ wait: true, budgetMs });
    assert.equal(status, 200, JSON.stringify(body));
    const d = body.data;
    assert.equal(d.claimed, 4, `budget ${budgetMs}: ${JSON.stringify(d)}`);
    assert.equal(d.completed, 4, `budget ${budgetMs}: ${JSON.stringify(d)}`);
    assert.equal(d.stoppedBy, "empty");
    assert.deepEqual(d.notStarted, { budget: 0, shutdown: 0 });
    assert.equal(ran.length, 4);
  };
  const { min, max } = BUDGET_RANGE_MS;
  for (const b of [min, min + 1, 1_999, 2_000, 10_000, 19_999, 20_000, 29_999, 30_000, 50_000]) {
    await check(b);
  }
  for (const b of [max - 1, max]) await check(b);
  await fc.assert(fc.asyncProperty(fc.integer({ min, max }), check), { numRuns: 15 });
  const bad = await endpoint.post({ wait: true, budgetMs: min - 1 });
  assert.equal(bad.status, 422, "budgets outside the range are refused, not run");
  const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(n, 0);
});

Deno.test("queue-worker over HTTP: jobs cut off by the budget go back unspent; the summary and log say why", async () => {
  await using db = await freshDatabase();
  let started = 0;
  // Default timeout (30 s): only the budget can end these runs.
  const job = defineJob({
    type: "runs.until.aborted",
    schema: z.object({ i: z.number() }),
    handler: untilAborted(() => started++),
  });
  const lines: string[] = [];
  await using endpoint = await workerEndpoint(db, [job], lines);
  await enqueueMany(db.sql, Array.from({ length: 25 }, (_, i) => ({ job, payload: { i } })));
  const { status, body } = await endpoint.post({ wait: true, budgetMs: 2_000 });
  assert.equal(status, 200);
  const d = body.data;
  assert.ok(d.claimed >= 1 && started >= 1, JSON.stringify(d));
  assert.equal(d.cutOff.budget, started, "every started job was cut off by the budget");
  assert.equal(d.notStarted.budget, d.claimed - started, "claimed but not started: budget");
  assert.equal(d.released, d.claimed);
  assert.deepEqual([d.completed, d.retried, d.deadLettered], [0, 0, 0]);
  assert.equal(d.stoppedBy, "budget");
  const rows = await db.sql`select attempts, lease_token, errors from queue.jobs`;
  assert.equal(rows.length, 25, "nothing was lost");
  assert.ok(rows.every((r) => r.attempts === 0), "no attempt was spent");
  assert.ok(rows.every((r) => r.lease_token === null && r.errors.length === 0));
  const logged = lines.map((l) => JSON.parse(l));
  const drained = logged.find((l) => l.msg === "queue drained");
  assert.equal(drained.stoppedBy, "budget");
  assert.deepEqual(drained.cutOff, d.cutOff);
  const cut = logged.filter((l) => l.msg === "job cut off, handed back");
  assert.equal(cut.length, started);
  assert.ok(cut.every((l) => l.reason === "budget" && /budget/.test(l.error) && l.jobId > 0));
  if (d.notStarted.budget > 0) {
    const notStarted = logged.find((l) => l.msg === "jobs not started, handed back");
    assert.equal(notStarted.reason, "budget");
    assert.equal(notStarted.count, d.notStarted.budget);
  }
});

Deno.test("queue worker: a job's own timeout, shorter than the budget left, still spends its attempt", async () => {
  await using db = await freshDatabase();
  const job = defineJob({
    type: "own.timeout",
    schema: z.object({}),
    timeoutMs: 200,
    maxAttempts: 1,
    handler: untilAborted(() => {}),
  });
  await enqueue(db.sql, job, {});
  const s = await runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    budgetMs: 60_000,
    log: createLogger("error", {}, () => {}),
  });
  assert.deepEqual([s.deadLettered, s.cutOff.budget, s.released], [1, 0, 0]);
  const [dead] = await db.sql`select attempts, last_error from queue.dead_letters`;
  assert.equal(dead!.attempts, 1);
  assert.match(dead!.last_error, /timed out after 200 ms/);
});

Deno.test("queue worker: stoppedBy says whether runnable jobs were left behind (maxJobs, empty)", async () => {
  await using db = await freshDatabase();
  const job = defineJob({ type: "noop", schema: z.object({ i: z.number() }), handler: () => {} });
  await enqueueMany(db.sql, Array.from({ length: 5 }, (_, i) => ({ job, payload: { i } })));
  const registry = jobRegistry([job]);
  const first = await runWorker({ sql: db.sql, registry, maxJobs: 2 });
  assert.deepEqual([first.completed, first.stoppedBy], [2, "maxJobs"]);
  const rest = await runWorker({ sql: db.sql, registry });
  assert.deepEqual([rest.completed, rest.stoppedBy], [3, "empty"]);
});

Deno.test("queue worker: a shutdown hands running jobs back without spending an attempt", async () => {
  await using db = await freshDatabase();
  let onStarted!: () => void;
  const running = new Promise<void>((r) => (onStarted = r));
  const job = defineJob({
    type: "long.running",
    schema: z.object({}),
    handler: untilAborted(() => onStarted()),
  });
  await enqueue(db.sql, job, {});
  const stop = new AbortController();
  const worker = runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    mode: "listen",
    signal: stop.signal,
    log: createLogger("error", {}, () => {}),
  });
  await running;
  stop.abort();
  const s = await worker;
  assert.deepEqual([s.cutOff.shutdown, s.released, s.retried, s.stoppedBy], [
    1,
    1,
    0,
    "shutdown",
  ]);
  const [row] = await db.sql`select attempts, lease_token from queue.jobs`;
  assert.deepEqual([row!.attempts, row!.lease_token], [0, null]);
});
