/**
 * Readiness: dependency checks run in parallel, each with a timeout, and the
 * result is cached for a few seconds so probes cannot turn into load. The body
 * is `application/health+json` shaped (http/health.ts answers it) and never
 * carries secrets or internal errors.
 */
import { type Clock, withTimeout } from "./time.ts";

/** Result of one check. */
export type CheckStatus = "pass" | "warn" | "fail";

/** What a check reports; `detail` must be safe to show anyone. */
export interface CheckResult {
  status: CheckStatus;
  detail?: string;
}

/** One dependency probe. A non-critical failure degrades to `warn`. */
export interface ReadinessCheck {
  name: string;
  critical?: boolean;
  timeoutMs?: number;
  check(signal: AbortSignal): Promise<CheckResult | void>;
}

/** The health+json body. */
export interface HealthBody {
  status: CheckStatus;
  checks: Record<string, { status: CheckStatus; durationMs: number; detail?: string }>;
}

const RANK: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

async function runOne(
  check: ReadinessCheck,
  onError: (name: string, error: unknown) => void,
): Promise<HealthBody["checks"][string]> {
  const started = performance.now();
  const timeoutMs = check.timeoutMs ?? 2_000;
  const timedOut: CheckResult = { status: "fail", detail: `timed out after ${timeoutMs} ms` };
  let result: CheckResult;
  try {
    result = (await withTimeout((signal) => check.check(signal), timeoutMs, () => timedOut)) ??
      { status: "pass" };
  } catch (error) {
    if (error === timedOut) result = timedOut;
    else {
      onError(check.name, error);
      result = { status: "fail", detail: "check failed" };
    }
  }
  const status = result.status === "fail" && !(check.critical ?? true) ? "warn" : result.status;
  const out: HealthBody["checks"][string] = {
    status,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  };
  if (result.detail) out.detail = result.detail;
  return out;
}

/** Builds a cached readiness evaluator. */
export function createReadiness(
  checks: ReadinessCheck[],
  options: { cacheMs?: number; now?: Clock; onError?: (n: string, e: unknown) => void } = {},
): () => Promise<HealthBody> {
  const cacheMs = options.cacheMs ?? 2_000;
  const now = options.now ?? Date.now;
  const onError = options.onError ?? (() => {});
  let cached: { at: number; body: Promise<HealthBody> } | null = null;
  return () => {
    const t = now();
    if (cached && t - cached.at < cacheMs) return cached.body;
    const body = Promise.all(checks.map((c) => runOne(c, onError))).then((results) => {
      const out: HealthBody = { status: "pass", checks: {} };
      results.forEach((r, i) => {
        out.checks[checks[i]!.name] = r;
        if (RANK[r.status] > RANK[out.status]) out.status = r.status;
      });
      return out;
    });
    cached = { at: t, body };
    return body;
  };
}

/** A readiness check that runs `select 1` against Postgres. */
export function postgresCheck(
  sql: () => Promise<{ unsafe(q: string): PromiseLike<unknown> }>,
  name = "postgres",
): ReadinessCheck {
  return {
    name,
    critical: true,
    timeoutMs: 1_500,
    async check() {
      await (await sql()).unsafe("select 1");
      return { status: "pass" };
    },
  };
}
