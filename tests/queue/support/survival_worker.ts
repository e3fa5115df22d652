/**
 * Child process for the recovery test: a worker with the default per-type
 * leases whose `t5` (5 s timeout) and `t30` (30 s timeout) handlers record that
 * they started, then park until the parent SIGKILLs the process.
 * Usage: deno run -A tests/queue/support/survival_worker.ts <db-url>
 */
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { defineJob, jobRegistry, runWorker } from "../../../supabase/functions/_shared/mod.ts";

const [url] = Deno.args;
const sql = postgres(url!, { max: 3, onnotice: () => {} });
const parked = (type: string, timeoutMs: number) =>
  defineJob({
    type,
    schema: z.object({}),
    timeoutMs,
    handler: async (_p, { id }) => {
      await sql`insert into public.survival_started (job_id) values (${id})`;
      await new Promise(() => {}); // until SIGKILL
    },
  });
await runWorker({
  sql,
  registry: jobRegistry([parked("t5", 5_000), parked("t30", 30_000)]),
  mode: "listen",
  pollMs: 100,
});
