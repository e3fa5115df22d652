/**
 * bench:queue child for this starter's queue (Deno, as deployed). One process is
 * one worker instance, like one `queue-worker` invocation.
 *
 * Argument: one JSON object
 *   {"url", "mode": "enqueue"|"drain", "n", "settings": {...}}
 * - enqueue: `enqueueMany` of n no-op jobs (it sends chunks of 5,000 per
 *   statement, one at a time unless settings.statementsInFlight says otherwise),
 *   timed in-process after the connection is open.
 * - drain: opens the connection pool, says ready, waits for `go`, then runs
 *   `runWorker` in drain mode; settings.shipped = true runs exactly what
 *   `queue-worker` passes (concurrency 10, default batch = 2 x concurrency,
 *   its default budget), otherwise settings.concurrency / settings.batchSize.
 * - latency: a worker in listen mode (LISTEN/NOTIFY), n single jobs enqueued one
 *   at a time; reports each job's enqueue -> handler start time.
 * The client is the one functions get (`createDatabase`: postgres.js, pool of 3,
 * prepared statements).
 */
import { z } from "npm:zod@4";
import {
  createDatabase,
  defineJob,
  enqueueMany,
  jobRegistry,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";
import { DEFAULT_BUDGET_MS } from "../../supabase/functions/queue-worker/spec.ts";
import { clock, commands, emit, handlerCounter } from "./protocol.ts";

interface Config {
  url: string;
  mode: "enqueue" | "drain" | "latency";
  n: number;
  settings: {
    shipped?: boolean;
    concurrency?: number;
    batchSize?: number;
    statementsInFlight?: number;
  };
}

const cfg = JSON.parse(Deno.args[0]!) as Config;
const db = createDatabase(cfg.url);
const sql = await db.sql();
const schema = z.object({ i: z.number() });

async function latency(samples: number[] | number, concurrency: number): Promise<number[]> {
  const count = typeof samples === "number" ? samples : samples.length;
  const pending = new Map<number, (at: number) => void>();
  const ping = defineJob({
    type: "ping",
    schema: z.object({ k: z.number() }),
    handler: ({ k }) => pending.get(k)?.(clock()),
  });
  const stop = new AbortController();
  const worker = runWorker({
    sql,
    registry: jobRegistry([ping]),
    queue: "latency",
    mode: "listen",
    pollMs: 5_000,
    concurrency,
    signal: stop.signal,
  });
  await new Promise((r) => setTimeout(r, 200));
  const out: number[] = [];
  for (let k = 0; k < count; k++) {
    const started = new Promise<number>((r) => pending.set(k, r));
    const t0 = clock();
    await enqueueMany(sql, [{ job: ping, payload: { k }, options: { queue: "latency" } }]);
    out.push((await started) - t0);
    pending.delete(k);
    await new Promise((r) => setTimeout(r, 5));
  }
  stop.abort();
  await worker;
  return out;
}

try {
  if (cfg.mode === "enqueue") {
    await sql`select 1`;
    const noop = defineJob({ type: "noop", schema, handler: () => {} });
    const items = Array.from({ length: cfg.n }, (_, i) => ({ job: noop, payload: { i } }));
    const t0 = clock();
    await enqueueMany(sql, items, { statementsInFlight: cfg.settings?.statementsInFlight });
    emit({ type: "result", ms: clock() - t0 });
  } else if (cfg.mode === "latency") {
    emit({ type: "result", samples: await latency(cfg.n, cfg.settings.concurrency ?? 10) });
  } else {
    // Open the pool's connections before the clock can start.
    await Promise.all([sql`select 1`, sql`select 1`, sql`select 1`]);
    const counter = handlerCounter();
    const noop = defineJob({ type: "noop", schema, handler: counter.hit });
    const cmd = commands();
    emit({ type: "ready" });
    await cmd.next("go");
    const s = cfg.settings;
    const summary = await runWorker({
      sql,
      registry: jobRegistry([noop]),
      ...(s.shipped
        ? { concurrency: 10, budgetMs: DEFAULT_BUDGET_MS }
        : { concurrency: s.concurrency, batchSize: s.batchSize }),
    });
    counter.finish({ completed: summary.completed, claimed: summary.claimed });
  }
} catch (error) {
  emit({ type: "error", message: String((error as Error)?.stack ?? error) });
} finally {
  await db.close();
}
Deno.exit(0);
