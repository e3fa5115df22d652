/**
 * The shared module's public surface: import from here in functions.
 *
 * @example
 * import { action, defineFunction, HttpError } from "../_shared/mod.ts";
 */
export {
  defineFunction,
  type EdgeFunction,
  type FunctionDeps,
  type FunctionSpec,
} from "./function.ts";
export { action, type HandlerContext, type RateLimitPolicy, route } from "./router.ts";
export { type AuthContext, type AuthMode } from "./auth.ts";
export { HttpError } from "./errors.ts";
export { type Env, readEnv } from "./core/env.ts";
export { createDatabase, type Database } from "./core/db.ts";
export { createLogger, type Logger } from "./core/log.ts";
export { type CheckResult, type ReadinessCheck } from "./core/readiness.ts";
export { CircuitBreaker } from "./circuit_breaker.ts";
export { BreakerRegistry } from "./breaker_registry.ts";
export { breakerReadiness, circuitOpenHttpError } from "./breaker_http.ts";
export { outboundFetch } from "./outbound_fetch.ts";
export { createRateLimiter } from "./rate_limit_http.ts";
