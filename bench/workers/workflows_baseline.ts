/**
 * bench:workflows fallback baseline, used only when DBOS cannot run: a 3-step
 * no-op "workflow" written by hand as one queue job per step, each step's job
 * enqueueing the next (no memoization, no run record, no compensation).
 *
 * Argument: {"url", "mode": "fill"|"drain", "n"}.
 * - fill: enqueues n first-step jobs in one statement.
 * - drain: ready, on `go` runs `runWorker` with the shipped settings (concurrency
 *   10, pool 3) until `stop`; the counter is hit in every step.
 */
import { z } from "npm:zod@4";
import {
  createDatabase,
  createLogger,
  defineJob,
  enqueue,
  jobRegistry,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";
import { clock, commands, emit, handlerCounter } from "./protocol.ts";

const cfg = JSON.parse(Deno.args[0]!) as { url: string; mode: "fill" | "drain"; n: number };
const db = createDatabase(cfg.url);
const sql = await db.sql();
const log = createLogger("error");

try {
  if (cfg.mode === "fill") {
    await sql`select 1`;
    const t0 = clock();
    await sql`select queue.enqueue('bench.step', jsonb_build_object('i', g, 'k', 0))
      from generate_series(1, ${cfg.n}::int) g`;
    emit({ type: "result", ms: clock() - t0 });
  } else {
    await Promise.all([sql`select 1`, sql`select 1`, sql`select 1`]);
    const counter = handlerCounter();
    const step = defineJob({
      type: "bench.step",
      schema: z.object({ i: z.number(), k: z.number() }),
      handler: async ({ i, k }) => {
        counter.hit();
        if (k < 2) await enqueue(sql, step, { i, k: k + 1 });
      },
    });
    const cmd = commands();
    emit({ type: "ready" });
    await cmd.next("go");
    const stop = new AbortController();
    cmd.next("stop").then(() => stop.abort());
    await runWorker({
      sql,
      registry: jobRegistry([step]),
      mode: "listen",
      pollMs: 100,
      concurrency: 10,
      signal: stop.signal,
      log,
    });
    counter.finish();
  }
} catch (error) {
  emit({ type: "error", message: String((error as Error)?.stack ?? error) });
} finally {
  await db.close();
}
Deno.exit(0);
