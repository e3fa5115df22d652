/**
 * The hosted Edge Runtime's limits (DESIGN.md §7), which the local stack
 * applies to every function process. `[local.limits]` in config.toml raises or
 * lowers them for `deno task dev` only (the Supabase CLI ignores the table,
 * with a warning, and the platform's limits are set by your plan):
 *
 * ```toml
 * [local.limits]
 * memory_mb = 256              # heap + external memory of one worker
 * wall_clock_s = 150           # 400 on paid plans
 * cpu_ms = 2000                # CPU time per request
 * request_idle_timeout_s = 150 # no response by then: 504
 * ```
 */
import { ConfigError, num } from "./config_values.ts";

/** Limits of one function worker. */
export interface FunctionLimits {
  memoryMb: number;
  wallClockMs: number;
  cpuMsPerRequest: number;
  requestIdleTimeoutMs: number;
}

/** The platform's defaults (free plan wall clock). */
export const PLATFORM_LIMITS: Readonly<FunctionLimits> = {
  memoryMb: 256,
  wallClockMs: 150_000,
  cpuMsPerRequest: 2_000,
  requestIdleTimeoutMs: 150_000,
};

const KEYS = new Set(["memory_mb", "wall_clock_s", "cpu_ms", "request_idle_timeout_s"]);

/** Parses `[local.limits]`; absent keys take the platform's values. */
export function parseLimits(file: string, t: Record<string, unknown>): FunctionLimits {
  for (const key of Object.keys(t)) {
    if (!KEYS.has(key)) {
      throw new ConfigError(
        file,
        `[local.limits] has no key "${key}" (known: ${[...KEYS].join(", ")})`,
      );
    }
  }
  const where = (key: string) => `[local.limits] ${key}`;
  const memoryMb = num(file, where("memory_mb"), t.memory_mb, 16, 16_384);
  const wallClockS = num(file, where("wall_clock_s"), t.wall_clock_s, 0.5, 86_400);
  const cpuMs = num(file, where("cpu_ms"), t.cpu_ms, 1, 3_600_000);
  const idleS = num(file, where("request_idle_timeout_s"), t.request_idle_timeout_s, 0.05, 3600);
  return {
    memoryMb: memoryMb ?? PLATFORM_LIMITS.memoryMb,
    wallClockMs: wallClockS === undefined ? PLATFORM_LIMITS.wallClockMs : wallClockS * 1000,
    cpuMsPerRequest: cpuMs ?? PLATFORM_LIMITS.cpuMsPerRequest,
    requestIdleTimeoutMs: idleS === undefined ? PLATFORM_LIMITS.requestIdleTimeoutMs : idleS * 1000,
  };
}
