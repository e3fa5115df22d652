/**
 * One "isolate" for the rate-limit concurrency test: its own process and pool,
 * firing `n` decisions at once against the same key. Prints the allowed count.
 * Usage: deno run -A tests/resilience/rate_limit_child.ts <dbUrl> <key> <limit> <n>
 */
import postgres from "npm:postgres@3";
import { rateLimit } from "../../supabase/functions/_shared/mod.ts";

const [url, key, limit, n] = Deno.args;
const sql = postgres(url!, { max: 8, onnotice: () => {} });
const rule = { name: "concurrency", limit: Number(limit), periodSeconds: 3600, timeoutMs: 30_000 };
try {
  const decisions = await Promise.all(
    Array.from({ length: Number(n) }, () => rateLimit(rule, key!, { sql })),
  );
  if (decisions.some((d) => d.degraded)) throw new Error("store unavailable during the test");
  console.log(JSON.stringify({ allowed: decisions.filter((d) => d.allowed).length }));
} finally {
  await sql.end();
}
