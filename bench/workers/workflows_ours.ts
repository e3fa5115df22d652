/**
 * bench:workflows child for this starter's workflow engine (Deno, as deployed).
 * The workflow is "bench.noop3": three no-op steps (`ctx.step`, each recorded),
 * the bench's counter hit in every step.
 *
 * Argument: one JSON object {"url", "mode", "n", "settings"}.
 * - fill: starts n runs in one statement (`workflows.start` per row, the SQL API a
 *   trigger would call), timed.
 * - drain: opens the pool, says ready, waits for `go`, then drives the runs through
 *   the shipped worker code path: `runWorker` with the `workflow.run` job type
 *   (`workflowRunJob`), exactly as `queue-worker` passes them (settings.shipped:
 *   concurrency 10, adaptive batch, its default budget, pool 3 from createDatabase;
 *   a budget that runs out is followed by the next invocation, as cron does), or
 *   with settings.concurrency / settings.pool (tuned). Until `stop`.
 * - latency: the same worker in listen mode (LISTEN/NOTIFY, shipped concurrency),
 *   n runs started one at a time with `startWorkflow`; each timed from the start
 *   call to its first step.
 */
import { z } from "npm:zod@4";
import {
  createDatabase,
  createLogger,
  defineWorkflow,
  jobRegistry,
  runWorker,
  startWorkflow,
  workflowRunJob,
} from "../../supabase/functions/_shared/mod.ts";
import { DEFAULT_BUDGET_MS } from "../../supabase/functions/queue-worker/spec.ts";
import { clock, commands, emit, handlerCounter } from "./protocol.ts";

interface Config {
  url: string;
  mode: "fill" | "drain" | "latency";
  n: number;
  settings: { shipped?: boolean; concurrency?: number; pool?: number };
}

const cfg = JSON.parse(Deno.args[0]!) as Config;
const db = createDatabase(cfg.url, { max: cfg.settings?.pool ?? 3 });
const sql = await db.sql();
const log = createLogger("error");

let onStep = () => {};
const noop3 = defineWorkflow({
  name: "bench.noop3",
  input: z.object({ i: z.number() }),
  run: async ({ i }, ctx) => {
    await ctx.step("a", () => onStep());
    await ctx.step("b", () => onStep());
    await ctx.step("c", () => onStep());
    return i;
  },
});
const registry = () => jobRegistry([workflowRunJob({ sql, workflows: [noop3], log })]);

try {
  if (cfg.mode === "fill") {
    await sql`select 1`;
    const t0 = clock();
    await sql`select workflows.start('bench.noop3', jsonb_build_object('i', g))
      from generate_series(1, ${cfg.n}::int) g`;
    emit({ type: "result", ms: clock() - t0 });
  } else if (cfg.mode === "latency") {
    const stop = new AbortController();
    const worker = runWorker({
      sql,
      registry: registry(),
      mode: "listen",
      concurrency: 10,
      signal: stop.signal,
      log,
    });
    await new Promise((r) => setTimeout(r, 200));
    const samples: number[] = [];
    // One untimed run first, as for DBOS (connections open, statements prepared).
    for (let k = -1; k < cfg.n; k++) {
      let hit!: (at: number) => void;
      let done!: () => void;
      const first = new Promise<number>((r) => hit = r);
      const third = new Promise<void>((r) => done = r);
      let steps = 0;
      // As for DBOS: the next run starts once this one's third step ran.
      onStep = () => {
        if (++steps === 1) hit(clock());
        if (steps === 3) done();
      };
      const t0 = clock();
      await startWorkflow(sql, noop3, { i: k });
      const at = await first;
      if (k >= 0) samples.push(at - t0);
      await third;
      await new Promise((r) => setTimeout(r, 5));
    }
    stop.abort();
    await worker;
    emit({ type: "result", samples });
  } else {
    const pool = cfg.settings.pool ?? 3;
    await Promise.all(Array.from({ length: pool }, () => sql`select 1`));
    const counter = handlerCounter();
    onStep = counter.hit;
    const cmd = commands();
    emit({ type: "ready" });
    await cmd.next("go");
    let stopped = false;
    const stop = new AbortController();
    cmd.next("stop").then(() => {
      stopped = true;
      stop.abort();
    });
    const s = cfg.settings;
    while (!stopped) {
      const summary = await runWorker({
        sql,
        registry: registry(),
        log,
        signal: stop.signal,
        ...(s.shipped
          ? { concurrency: 10, budgetMs: DEFAULT_BUDGET_MS }
          : { concurrency: s.concurrency }),
      });
      // Drained (the parent stops us once every step ran): wait for the stop.
      if (summary.stoppedBy === "empty") await cmd.next("stop");
    }
    counter.finish();
  }
} catch (error) {
  emit({ type: "error", message: String((error as Error)?.stack ?? error) });
} finally {
  await db.close();
}
Deno.exit(0);
