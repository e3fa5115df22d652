/**
 * A workflow chaos-test worker process: advances `order.checkout` runs forever
 * (listen mode) against the test's loopback payment sink, tagging each partner
 * request with its pid so the sink can name the process to kill. The parent test
 * SIGKILLs these processes and starts new ones.
 * Usage: deno run -A tests/workflows/chaos_worker.ts <db-url> <payment-url>
 */
import postgres from "npm:postgres@3";
import {
  createLogger,
  jobRegistry,
  orderCheckoutWorkflow,
  runWorker,
  workflowRunJob,
} from "../../supabase/functions/_shared/mod.ts";

const [url, paymentUrl] = Deno.args;
const sql = postgres(url!, { max: 8, onnotice: () => {} });
const tagged: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.set("x-worker-pid", String(Deno.pid));
  return fetch(input, { ...init, headers });
};
const log = createLogger("error");
const workflow = orderCheckoutWorkflow({ sql, paymentUrl: paymentUrl!, fetch: tagged });

await runWorker({
  sql,
  registry: jobRegistry([workflowRunJob({ sql, workflows: [workflow], log })]),
  mode: "listen",
  pollMs: 100,
  concurrency: 20,
  // Long: a busy but healthy worker keeps its leases; the test ends a killed one's at once.
  leaseMs: 60_000,
  workerId: `w-${Deno.pid}`,
  log,
});
