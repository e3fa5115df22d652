/**
 * Another isolate for the shared-breaker test: its own process, pool and
 * breaker on the same key. Usage:
 *   deno run -A tests/resilience/breaker_child.ts <dbUrl> <key> trip     # fails once: trips and publishes
 *   deno run -A tests/resilience/breaker_child.ts <dbUrl> <key> recover  # trips, then a probe succeeds
 * Prints {"openUntil": <epoch ms>} once its publications are stored.
 */
import postgres from "npm:postgres@3";
import {
  CircuitBreaker,
  postgresBreakerStore,
  SharedBreakerState,
} from "../../supabase/functions/_shared/mod.ts";

const [url, key, mode] = Deno.args;
const sql = postgres(url!, { max: 2, onnotice: () => {} });
let t = Date.now();
const now = () => t;
const shared = new SharedBreakerState(postgresBreakerStore(sql), { now });
const breaker = new CircuitBreaker({
  key: key!,
  policies: [{ kind: "consecutive", failures: 1 }],
  openMs: 60_000,
}, { now });
shared.attach(breaker);
try {
  await breaker.execute(() => Promise.reject(new Error("dependency down"))).catch(() => {});
  const state = breaker.state;
  if (state.kind !== "open") throw new Error("child breaker did not trip");
  if (mode === "recover") {
    t = state.openUntil; // this isolate's clock reaches openUntil: one probe, which succeeds
    await breaker.execute(() => Promise.resolve("up"));
    if (breaker.state.kind !== "closed") throw new Error("child breaker did not recover");
  }
  await shared.flush();
  console.log(JSON.stringify({ openUntil: state.openUntil }));
} finally {
  await sql.end();
}
