/**
 * Latency of one rate-limit decision (`rateLimit()`, one SQL statement)
 * against a local embedded Postgres, sequential from one client: p50/p99.
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { startPostgres } from "../local/database/mod.ts";
import { buildTemplate, freePort, withDatabase } from "../tests/_harness/database.ts";
import { rateLimit } from "../supabase/functions/_shared/mod.ts";

/** Starts a throwaway cluster, migrates it, and times `n` decisions over 100 keys. */
export async function benchRateLimit(n: number): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "bench-ratelimit-" });
  await Deno.chmod(dir, 0o755);
  const server = await startPostgres({ dataDir: join(dir, "data"), port: freePort() });
  const sql = postgres(withDatabase(server.url, "bench"), { max: 1, onnotice: () => {} });
  try {
    await buildTemplate(server.url, "bench");
    const rule = { name: "bench", limit: 1_000, periodSeconds: 60 };
    for (let i = 0; i < 500; i++) await rateLimit(rule, `warm-${i % 100}`, { sql });
    const times: number[] = [];
    let allowed = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const d = await rateLimit(rule, `user-${i % 100}`, { sql });
      times.push(performance.now() - t0);
      if (d.degraded) throw new Error("store unavailable during the benchmark");
      if (d.allowed) allowed++;
    }
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
    console.log(`\nrate-limit decision (local embedded Postgres 17, 1 connection, ${n} decisions)`);
    console.log(
      `  p50 ${(q(0.5) * 1000).toFixed(0)} µs, p99 ${(q(0.99) * 1000).toFixed(0)} µs, ` +
        `max ${(q(1) * 1000).toFixed(0)} µs; ${allowed} admitted`,
    );
  } finally {
    await sql.end();
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
