/**
 * Liveness (`GET <fn>/health`, no I/O) and readiness (`GET <fn>/ready`):
 * checks run in parallel, each with a timeout, and the result is cached for a
 * few seconds so probes cannot turn into load. Bodies follow
 * `application/health+json` and never carry secrets or internal errors.
 */

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
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ status: "fail", detail: `timed out after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  let result: CheckResult;
  try {
    result = await Promise.race([
      check.check(controller.signal).then((r) => r ?? { status: "pass" as const }),
      timeout,
    ]);
  } catch (error) {
    onError(check.name, error);
    result = { status: "fail", detail: "check failed" };
  } finally {
    clearTimeout(timer);
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
  options: { cacheMs?: number; now?: () => number; onError?: (n: string, e: unknown) => void } = {},
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

/** A health+json response: 200 for pass/warn, 503 (with Retry-After) for fail. */
export function healthResponse(body: HealthBody): Response {
  const headers = new Headers({
    "content-type": "application/health+json",
    "cache-control": "no-store",
  });
  if (body.status === "fail") headers.set("retry-after", "5");
  return new Response(JSON.stringify(body), {
    status: body.status === "fail" ? 503 : 200,
    headers,
  });
}

/** The liveness body: the isolate is up; no dependency is consulted. */
export const LIVE: HealthBody = { status: "pass", checks: {} };

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
