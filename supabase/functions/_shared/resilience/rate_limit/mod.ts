/** Rate limiting: the Postgres decision, the client address, the request-path limiter. */
export { clientIp, ipBucket, parseIp, UNKNOWN_IP } from "./client_ip.ts";
export {
  checkRule,
  isStoreOutage,
  MAX_PLAIN_KEY_BYTES,
  rateLimit,
  type RateLimitDecision,
  type RateLimitDeps,
  type RateLimitRule,
  storeBreaker,
  storedKey,
  storeUnavailable,
} from "./decision.ts";
export {
  createRateLimiter,
  type RateLimitCaller,
  RateLimitedError,
  type RateLimiter,
  type RateLimiterOptions,
  rateLimitHeaders,
  rateLimitKey,
  type RateLimitPolicy,
} from "./limiter.ts";
