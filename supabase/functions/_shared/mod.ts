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
} from "./http/define_function.ts";
export { action, type HandlerContext, type RateLimitPolicy, route } from "./http/router.ts";
export { type AuthContext, type AuthMode } from "./auth/authenticate.ts";
export { HttpError } from "./http/problem.ts";
export { type Env, readEnv } from "./core/env.ts";
export { createDatabase, type Database } from "./core/db.ts";
export { createLogger, type Logger } from "./core/log.ts";
export { type CheckResult, type ReadinessCheck } from "./core/readiness.ts";
export { CircuitBreaker } from "./resilience/breaker/circuit_breaker.ts";
export { BreakerRegistry } from "./resilience/breaker/registry.ts";
export { breakerReadiness, circuitOpenHttpError } from "./resilience/breaker/readiness.ts";
export { outboundFetch } from "./resilience/outbound_fetch.ts";
export { createRateLimiter } from "./resilience/rate_limit/limiter.ts";
