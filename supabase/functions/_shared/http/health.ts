/**
 * Liveness (`GET <fn>/health`, no I/O) and readiness (`GET <fn>/ready`, see
 * core/readiness.ts) as `application/health+json` responses.
 */
import type { HealthBody } from "../core/readiness.ts";

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
