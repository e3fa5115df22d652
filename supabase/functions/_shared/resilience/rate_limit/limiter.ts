/**
 * Rate limits on the request path: who the caller is, the IETF RateLimit
 * headers (draft-ietf-httpapi-ratelimit-headers), and the 429 problem.
 *
 * @example
 * export default defineFunction(spec, { rateLimiter: createRateLimiter(db) });
 */
import { ipBucket } from "./client_ip.ts";
import type { Database } from "../../core/db.ts";
import { HttpError } from "../../http/problem.ts";
import type { RateLimiter } from "../../http/define_function.ts";
import {
  checkRule,
  rateLimit,
  type RateLimitDecision,
  type RateLimitRule,
  storeUnavailable,
  type WarnLog,
} from "./decision.ts";
import type { HandlerContext, RateLimitPolicy } from "../../http/router.ts";

/** A structured-field string (RFC 8941): quoted, with `\` and `"` escaped, printable ASCII only. */
function sfString(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, "_");
  return `"${printable.replace(/["\\]/g, (c) => "\\" + c)}"`;
}

/**
 * `RateLimit-Policy`, `RateLimit` and (when refused) `Retry-After`. Without a
 * store answer (degraded) the remaining quota is unknown, so only the policy is sent.
 */
export function rateLimitHeaders(
  decision: RateLimitDecision,
  rule: RateLimitRule,
): Record<string, string> {
  const name = sfString(rule.name);
  const headers: Record<string, string> = {
    "ratelimit-policy": `${name};q=${rule.limit};w=${Math.ceil(rule.periodSeconds)}`,
  };
  if (!decision.degraded) {
    headers["ratelimit"] = `${name};r=${decision.remaining};t=${decision.resetSeconds}`;
  }
  if (!decision.allowed) headers["retry-after"] = String(decision.retryAfterSeconds);
  return headers;
}

/**
 * The error for a refused decision: 429 `rate_limited`, or 503
 * `rate_limit_unavailable` when a fail-closed rule could not reach its store.
 */
export function rateLimitedError(decision: RateLimitDecision, rule: RateLimitRule): HttpError {
  const headers = rateLimitHeaders(decision, rule);
  if (decision.degraded === "closed") {
    return new HttpError({
      status: 503,
      code: "rate_limit_unavailable",
      detail: "Rate limiting is unavailable; try again shortly.",
      headers,
    });
  }
  return new HttpError({
    status: 429,
    code: "rate_limited",
    detail: `Rate limit "${rule.name}" exceeded: ${rule.limit} per ${rule.periodSeconds} s.`,
    headers,
  });
}

/**
 * The rate-limit key for a request. `user` falls back to the API key name,
 * and both fall back to the client IP (an IPv6 caller's /64), so anonymous
 * callers are limited too.
 */
export function rateLimitKey(
  ctx: Pick<HandlerContext, "auth" | "clientIp">,
  by: RateLimitPolicy["key"] = "auto",
): string {
  const { auth } = ctx;
  if ((by === "user" || by === "auto") && auth.mode === "user" && auth.sub) {
    return `user:${auth.sub}`;
  }
  if ((by === "apikey" || by === "auto" || by === "user") && auth.keyName) {
    return `key:${auth.mode}:${auth.keyName}`;
  }
  return `ip:${ipBucket(ctx.clientIp)}`;
}

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  log?: WarnLog;
}

/**
 * The pipeline's `rateLimiter`: decides after auth, returns the headers for an
 * admitted response, throws 429 (or 503, fail-closed without a store) otherwise.
 */
export function createRateLimiter(db: Database, options: RateLimiterOptions = {}): RateLimiter {
  return async (policy: RateLimitPolicy, ctx: HandlerContext, name: string) => {
    const rule: RateLimitRule = { ...policy, name };
    const key = rateLimitKey(ctx, policy.key);
    const log = options.log ?? ctx.log;
    const sql = await db.sql().catch((error) => new NoStore(error));
    // No database configured: the rule's store-error mode decides.
    const decision = sql instanceof NoStore
      ? (checkRule(rule), storeUnavailable(rule, sql.error, log))
      : await rateLimit(rule, key, { sql, log });
    if (!decision.allowed) throw rateLimitedError(decision, rule);
    return rateLimitHeaders(decision, rule);
  };
}

class NoStore {
  constructor(readonly error: unknown) {}
}
