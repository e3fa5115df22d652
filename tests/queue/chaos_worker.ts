/**
 * A chaos-test worker process: drains the `chaos` jobs forever (listen mode),
 * failing at random and recording each successful run in public.chaos_effects.
 * The parent test SIGKILLs these processes at random and starts new ones.
 * Usage: deno run -A tests/queue/chaos_worker.ts <db-url> <failure-rate>
 */
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { defineJob, jobRegistry } from "../../supabase/functions/_shared/queue/job.ts";
import { runWorker } from "../../supabase/functions/_shared/queue/worker.ts";

const [url, rate] = Deno.args;
const failureRate = Number(rate);
const sql = postgres(url!, { max: 3, onnotice: () => {} });
const chaos = defineJob({
  type: "chaos",
  schema: z.object({ n: z.number() }),
  timeoutMs: 2_000,
  backoff: { baseMs: 5, maxMs: 50 },
  handler: async (_payload, ctx) => {
    if (Math.random() < failureRate) throw new Error("random failure");
    await sql`insert into public.chaos_effects (job_id, attempt, pid)
      values (${ctx.id}, ${ctx.attempt}, ${Deno.pid})`;
  },
});
console.log("ready");
await runWorker({
  sql,
  registry: jobRegistry([chaos]),
  concurrency: 8,
  batchSize: 25,
  leaseMs: 1_500,
  mode: "listen",
  pollMs: 100,
});
