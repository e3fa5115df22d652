/**
 * `deno task bench:queue`: this project's queue against graphile-worker (batched:
 * localQueue + batched completes) and pg-boss (batched fetch), side by side on
 * one embedded Postgres (a database each), with equal handler concurrency.
 *
 * For each queue and round: enqueue N no-op jobs in batches (jobs/s), then start
 * a worker and time from its first handler call to the N-th (drain jobs/s; start-up
 * costs of each library excluded). Then, for
 * this queue, the enqueue-to-handler-start latency with a worker already running
 * (LISTEN/NOTIFY). Prints medians over the rounds and the ratios.
 *
 * Usage: deno task bench:queue [--n=20000] [--concurrency=10] [--batch=100] [--rounds=3]
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { run as runGraphile, runMigrations as graphileMigrations } from "npm:graphile-worker@0.18";
import { makeWorkerUtils } from "npm:graphile-worker@0.18";
import { PgBoss } from "npm:pg-boss@12";
import { applyBootstrap, applyMigrations } from "../local/migrate.ts";
import { startPostgres } from "../local/postgres_server.ts";
import { freePort, withDatabase } from "../tests/_harness/database.ts";
import { enqueueMany } from "../supabase/functions/_shared/queue/enqueue.ts";
import { defineJob, jobRegistry } from "../supabase/functions/_shared/queue/job.ts";
import { runWorker } from "../supabase/functions/_shared/queue/worker.ts";

const arg = (name: string, fallback: number) => {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.split("=")[1]) : fallback;
};
const N = arg("n", 20_000);
const C = arg("concurrency", 10);
const B = arg("batch", 100);
const ROUNDS = arg("rounds", 3);
const CHUNK = 5_000;

interface Result {
  enqueue: number;
  drain: number;
}

const rate = (n: number, ms: number) => (n / ms) * 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

async function createDb(adminUrl: string, name: string): Promise<string> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  return withDatabase(adminUrl, name);
}

/**
 * Counts handler calls. Drain time is taken from the first handler call to the
 * n-th, the same way for every queue, so each library's start-up (connecting,
 * migration checks, first poll) stays out of the comparison.
 */
function counter(n: number) {
  let count = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const c = {
    done,
    firstAt: 0,
    lastAt: 0,
    hit() {
      const at = performance.now();
      if (count === 0) c.firstAt = at;
      if (++count === n) {
        c.lastAt = at;
        resolve();
      }
    },
  };
  return c;
}

async function benchOurs(url: string): Promise<Result> {
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  await applyBootstrap(sql);
  await applyMigrations(sql);
  const c = counter(N);
  const noop = defineJob({ type: "noop", schema: z.object({ i: z.number() }), handler: c.hit });
  const items = Array.from({ length: N }, (_, i) => ({ job: noop, payload: { i } }));
  let t = performance.now();
  await enqueueMany(sql, items);
  const enqueueMs = performance.now() - t;
  t = performance.now();
  const summary = await runWorker({
    sql,
    registry: jobRegistry([noop]),
    concurrency: C,
    batchSize: B,
  });
  await c.done;
  const drainMs = c.lastAt - c.firstAt;
  if (summary.completed !== N) throw new Error(`ours completed ${summary.completed} of ${N}`);
  await sql.end();
  return { enqueue: rate(N, enqueueMs), drain: rate(N, drainMs) };
}

async function benchGraphile(url: string): Promise<Result> {
  await graphileMigrations({ connectionString: url });
  const utils = await makeWorkerUtils({ connectionString: url });
  let t = performance.now();
  for (let i = 0; i < N; i += CHUNK) {
    await utils.addJobs(
      Array.from({ length: Math.min(CHUNK, N - i) }, (_, k) => ({
        identifier: "noop",
        payload: { i: i + k },
      })),
    );
  }
  const enqueueMs = performance.now() - t;
  await utils.release();
  const c = counter(N);
  t = performance.now();
  const runner = await runGraphile({
    connectionString: url,
    concurrency: C,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: { noop: () => c.hit() },
    logger: new (await import("npm:graphile-worker@0.18")).Logger(() => () => {}),
    preset: {
      worker: { localQueue: { size: B }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
    },
  });
  await c.done;
  const drainMs = c.lastAt - c.firstAt;
  await runner.stop();
  return { enqueue: rate(N, enqueueMs), drain: rate(N, drainMs) };
}

async function benchPgBoss(url: string): Promise<Result> {
  const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false });
  boss.on("error", () => {});
  await boss.start();
  await boss.createQueue("noop");
  let t = performance.now();
  for (let i = 0; i < N; i += CHUNK) {
    await boss.insert(
      "noop",
      Array.from({ length: Math.min(CHUNK, N - i) }, (_, k) => ({ data: { i: i + k } })),
    );
  }
  const enqueueMs = performance.now() - t;
  const c = counter(N);
  t = performance.now();
  // C workers, each fetching a batch of B / C: the same jobs in flight as the others.
  await boss.work("noop", {
    localConcurrency: C,
    batchSize: Math.max(1, Math.round(B / C)),
    pollingIntervalSeconds: 0.5,
    burstWhenBatchFull: true,
  }, (jobs) => {
    for (const _ of jobs) c.hit();
    return Promise.resolve();
  });
  await c.done;
  const drainMs = c.lastAt - c.firstAt;
  await boss.stop({ graceful: false, timeout: 5000 }).catch(() => {});
  return { enqueue: rate(N, enqueueMs), drain: rate(N, drainMs) };
}

/** Enqueue-to-start latency of single jobs while a listening worker runs. */
async function latencyOurs(url: string, samples = 300): Promise<number[]> {
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  const pending = new Map<number, (at: number) => void>();
  const ping = defineJob({
    type: "ping",
    schema: z.object({ k: z.number() }),
    handler: ({ k }) => pending.get(k)?.(performance.now()),
  });
  const stop = new AbortController();
  const worker = runWorker({
    sql,
    registry: jobRegistry([ping]),
    queue: "latency",
    mode: "listen",
    pollMs: 5_000,
    concurrency: C,
    signal: stop.signal,
  });
  await new Promise((r) => setTimeout(r, 200));
  const out: number[] = [];
  for (let k = 0; k < samples; k++) {
    const started = new Promise<number>((r) => pending.set(k, r));
    const t0 = performance.now();
    await enqueueMany(sql, [{ job: ping, payload: { k }, options: { queue: "latency" } }]);
    out.push((await started) - t0);
    pending.delete(k);
    await new Promise((r) => setTimeout(r, 5));
  }
  stop.abort();
  await worker;
  await sql.end();
  return out;
}

async function main() {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "bench-queue-pg-" });
  await Deno.chmod(dir, 0o755);
  const pg = await startPostgres({ dataDir: join(dir, "data"), port: freePort(), ephemeral: true });
  console.log(`queue bench: N=${N} no-op jobs, concurrency ${C}, batch ${B}, ${ROUNDS} rounds`);
  const results: Record<string, Result[]> = { ours: [], graphile: [], pgboss: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      results.ours!.push(await benchOurs(await createDb(pg.url, `bench_ours_${r}`)));
      results.graphile!.push(await benchGraphile(await createDb(pg.url, `bench_graphile_${r}`)));
      results.pgboss!.push(await benchPgBoss(await createDb(pg.url, `bench_pgboss_${r}`)));
      const line = Object.entries(results).map(([k, v]) => `${k} ${Math.round(v.at(-1)!.drain)}/s`);
      console.log(`round ${r + 1}: drain ${line.join(", ")}`);
    }
    const lat = await latencyOurs(withDatabase(pg.url, "bench_ours_0"));
    const med = (k: string, f: keyof Result) => median(results[k]!.map((x) => x[f]));
    console.log("\n| queue | enqueue jobs/s | drain jobs/s | drain ratio (ours / peer) |");
    console.log("| --- | --- | --- | --- |");
    for (const k of ["ours", "graphile", "pgboss"]) {
      const ratio = k === "ours" ? "-" : `${(med("ours", "drain") / med(k, "drain")).toFixed(2)}x`;
      console.log(
        `| ${k} | ${Math.round(med(k, "enqueue"))} | ${Math.round(med(k, "drain"))} | ${ratio} |`,
      );
    }
    console.log(
      `\nenqueue -> start latency (ours, worker listening, ${lat.length} jobs): ` +
        `p50 ${quantile(lat, 0.5).toFixed(2)} ms, p99 ${quantile(lat, 0.99).toFixed(2)} ms`,
    );
    console.log(
      `enqueue ratio ours/graphile ${
        (med("ours", "enqueue") / med("graphile", "enqueue")).toFixed(2)
      }x, ours/pg-boss ${(med("ours", "enqueue") / med("pgboss", "enqueue")).toFixed(2)}x`,
    );
  } finally {
    await pg.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

await main();
