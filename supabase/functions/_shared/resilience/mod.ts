/** `resilience`: circuit breakers, rate limits and disciplined outbound fetch. */
export * from "./breaker/mod.ts";
export * from "./rate_limit/mod.ts";
export { outboundFetch, type OutboundOptions, parseRetryAfter } from "./outbound_fetch.ts";
