/**
 * Rate limits on the request path: who the caller is, the IETF RateLimit
 * headers (draft-ietf-httpapi-ratelimit-headers), and the refusal
 * ({@link RateLimitedError}, which http/problem.ts answers 429, or 503 when a
 * fail-closed rule has no store).
 *
 * @example
 * export default defineFunction(spec, { rateLimiter: createRateLimiter(db) });
 */
import type { Database } from "../../core/db.ts";
import { LayerError } from "../../core/errors.ts";
import type { WarnLog } from "../../core/log.ts";
import type { Clock } from "../../core/time.ts";
import { ipBucket } from "./client_ip.ts";
import {
  checkRule,
  rateLimit,
  type RateLimitDecision,
  type RateLimitRule,
  storeUnavailable,
} from "./decision.ts";

/** A rate limit declared on a function, action or route (enforced by `deps.rateLimiter`). */
export interface RateLimitPolicy {
  /** Requests allowed per period. */
  limit: number;
  periodSeconds: number;
  /** What identifies a caller: user id, API key name or client IP (default: user, else key, else IP). */
  key?: "user" | "apikey" | "ip" | "auto";
  /** When the limiter's store is unreachable: admit (`open`, default) or refuse (`closed`). */
  onStoreError?: "open" | "closed";
  /** Policy name in the RateLimit headers (default: the action or route name). */
  name?: string;
}

/** What a limiter needs to know about the caller (a handler context fits). */
export interface RateLimitCaller {
  auth: { mode: string; sub: string | null; keyName: string | null };
  /** The vouched-for client address (see client_ip.ts). */
  readonly clientIp: string;
  log: WarnLog;
}

/** Enforces a rate limit; returns headers for the response or throws {@link RateLimitedError}. */
export type RateLimiter = (
  policy: RateLimitPolicy,
  caller: RateLimitCaller,
  name: string,
) => Promise<Record<string, string> | void>;

/** A refused decision, with the headers the answer carries. */
export class RateLimitedError extends LayerError {
  override readonly name = "RateLimitedError";
  /** `RateLimit-Policy`, `RateLimit` and `Retry-After` for the refusal. */
  readonly headers: Record<string, string>;
  /** 429, or 503 when a fail-closed rule could not reach its store (callers outside HTTP read it). */
  readonly status: 429 | 503;
  constructor(readonly decision: RateLimitDecision, readonly rule: RateLimitRule) {
    super(
      decision.degraded === "closed" ? "rate_limit_unavailable" : "rate_limited",
      decision.degraded === "closed"
        ? "Rate limiting is unavailable; try again shortly."
        : `Rate limit "${rule.name}" exceeded: ${rule.limit} per ${rule.periodSeconds} s.`,
    );
    this.headers = rateLimitHeaders(decision, rule);
    this.status = decision.degraded === "closed" ? 503 : 429;
  }
}

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
 * The rate-limit key for a request. `user` falls back to the API key name,
 * and both fall back to the client IP (an IPv6 caller's /64), so anonymous
 * callers are limited too.
 */
export function rateLimitKey(
  caller: Pick<RateLimitCaller, "auth" | "clientIp">,
  by: RateLimitPolicy["key"] = "auto",
): string {
  const { auth } = caller;
  if ((by === "user" || by === "auto") && auth.mode === "user" && auth.sub) {
    return `user:${auth.sub}`;
  }
  if ((by === "apikey" || by === "auto" || by === "user") && auth.keyName) {
    return `key:${auth.mode}:${auth.keyName}`;
  }
  return `ip:${ipBucket(caller.clientIp)}`;
}

/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  log?: WarnLog;
  /** The store breaker's clock (default: Date.now). */
  now?: Clock;
}

/**
 * The pipeline's `rateLimiter`: decides after auth, returns the headers for an
 * admitted response, throws {@link RateLimitedError} otherwise.
 */
export function createRateLimiter(db: Database, options: RateLimiterOptions = {}): RateLimiter {
  return async (policy, caller, name) => {
    const rule: RateLimitRule = { ...policy, name };
    const key = rateLimitKey(caller, policy.key);
    const log = options.log ?? caller.log;
    const sql = await db.sql().catch((error) => new NoStore(error));
    // No database configured: the rule's store-error mode decides.
    const decision = sql instanceof NoStore
      ? (checkRule(rule), storeUnavailable(rule, sql.error, log))
      : await rateLimit(rule, key, { sql, log, now: options.now });
    if (!decision.allowed) throw new RateLimitedError(decision, rule);
    return rateLimitHeaders(decision, rule);
  };
}

class NoStore {
  constructor(readonly error: unknown) {}
}
