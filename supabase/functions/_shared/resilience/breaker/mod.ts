/** The circuit breaker: state machine, trip policies, errors, registry, shared state, readiness. */
export {
  type BreakerDeps,
  type BreakerOptions,
  type BreakerState,
  type BreakerSync,
  type CallOptions,
  type CallOutcome,
  CircuitBreaker,
  type OpenSource,
  type TransitionListener,
} from "./circuit_breaker.ts";
export {
  BreakerTimeoutError,
  CircuitOpenError,
  defaultIsFailure,
  defaultIsFailureResult,
  type FailureClassifier,
  type ResultClassifier,
} from "./errors.ts";
export {
  type ConsecutiveFailuresPolicy,
  type FailureRatioPolicy,
  type TripPolicy,
} from "./policy.ts";
export { breakerReadiness, type BreakerReadinessOptions } from "./readiness.ts";
export { BreakerRegistry, type RegistryOptions } from "./registry.ts";
export {
  type BreakerStore,
  postgresBreakerStore,
  SharedBreakerState,
  type SharedRecord,
  type SharedStateOptions,
} from "./shared_state.ts";
