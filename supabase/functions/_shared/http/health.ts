/**
 * Liveness (`GET <fn>/health`, no I/O) and readiness (`GET <fn>/ready`, see
 * core/readiness.ts) as `application/health+json` responses.
 */
import type { HealthBody } from "../core/readiness.ts";

const HEALTH_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "application/health+json",
  "cache-control": "no-store",
});
const FAIL_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...HEALTH_HEADERS,
  "retry-after": "5",
});

/**
 * A health+json response: 200 for pass/warn, 503 (with Retry-After) for fail.
 * `extra` headers (the request's CORS headers and id) go into the same init: a
 * plain record, with no `Headers` object built and no `set` afterwards (what the
 * first answer of a cold isolate, usually a health check, would pay for them).
 */
export function healthResponse(body: HealthBody, extra?: Record<string, string>): Response {
  const fail = body.status === "fail";
  const base = fail ? FAIL_HEADERS : HEALTH_HEADERS;
  return new Response(JSON.stringify(body), {
    status: fail ? 503 : 200,
    headers: extra ? { ...base, ...extra } : base,
  });
}

/** The liveness body: the isolate is up; no dependency is consulted. */
export const LIVE: HealthBody = { status: "pass", checks: {} };
