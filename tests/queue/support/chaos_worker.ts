/**
 * A chaos-test worker process: drains the `chaos` jobs forever (listen mode),
 * failing where the plan says and recording each successful run in
 * public.chaos_effects. The parent test SIGKILLs these processes and starts
 * new ones.
 *
 * A `chaos.hold` job parks its first run until the process is killed, holding
 * a long lease: the test kills whichever worker holds it, so every kill lands
 * while that worker runs a leased job, on a fast machine or a slow one.
 * Usage: deno run -A tests/queue/support/chaos_worker.ts <db-url>
 */
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import {
  defineJob,
  type JobContext,
  jobRegistry,
  runWorker,
} from "../../../supabase/functions/_shared/mod.ts";
import { failsAt, HOLD_LEASE_MS } from "./chaos_plan.ts";

const [url] = Deno.args;
const sql = postgres(url!, { max: 3, onnotice: () => {} });
const schema = z.object({ n: z.number() });
const backoff = { baseMs: 5, maxMs: 50 };

async function run(n: number, ctx: JobContext) {
  if (failsAt(n, ctx.attempt)) throw new Error(`planned failure of job ${n}, run ${ctx.attempt}`);
  await sql`insert into public.chaos_effects (job_id, attempt, pid)
    values (${ctx.id}, ${ctx.attempt}, ${Deno.pid})`;
}

const chaos = defineJob({
  type: "chaos",
  schema,
  timeoutMs: 2_000,
  backoff,
  handler: ({ n }, ctx) => run(n, ctx),
});

const hold = defineJob({
  type: "chaos.hold",
  schema,
  // Longer than any wait for the kill: a timeout must not end the hold first.
  timeoutMs: HOLD_LEASE_MS,
  backoff,
  handler: async ({ n }, ctx) => {
    // A run that already lost its lease (it waited too long behind other jobs)
    // must not hold: the job belongs to another worker now.
    if (!await ctx.extendLease(HOLD_LEASE_MS)) throw new Error("lease lost before the hold");
    const [first] = await sql`insert into public.chaos_holds (job_id, pid, attempt)
      values (${ctx.id}, ${Deno.pid}, ${ctx.attempt}) on conflict do nothing returning job_id`;
    if (first) await new Promise(() => {}); // until SIGKILL
    await run(n, ctx);
  },
});

await runWorker({
  sql,
  registry: jobRegistry([chaos, hold]),
  concurrency: 8,
  // Small batches: most of what a worker holds is running, so a kill interrupts
  // running jobs rather than a backlog it had not started.
  batchSize: 8,
  leaseMs: 1_500,
  mode: "listen",
  pollMs: 100,
  workerId: `chaos-${Deno.pid}`,
});
