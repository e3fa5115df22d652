/**
 * Child process for the kill test: claims jobs with a short lease and never
 * finishes them, printing "claimed <n>" once its handlers are running.
 * Usage: deno run -A tests/queue/support/hang_worker.ts <db-url> <lease-ms>
 */
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { defineJob, jobRegistry, runWorker } from "../../../supabase/functions/_shared/mod.ts";

const [url, lease] = Deno.args;
const sql = postgres(url!, { max: 2, onnotice: () => {} });
let started = 0;
const hang = defineJob({
  type: "kill.me",
  schema: z.object({ n: z.number() }),
  timeoutMs: 600_000,
  handler: () => {
    if (++started === 5) console.log("claimed 5");
    return new Promise(() => {});
  },
});
await runWorker({
  sql,
  registry: jobRegistry([hang]),
  concurrency: 5,
  batchSize: 5,
  leaseMs: Number(lease),
  maxJobs: 5,
});
