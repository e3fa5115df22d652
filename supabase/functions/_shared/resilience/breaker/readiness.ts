/**
 * Breaker state in `/ready`: a readiness check over one breaker, a list, or a
 * registry. (An open breaker on the request path is answered 503 by
 * http/problem.ts.)
 *
 * @example
 * defineFunction({ name: "fn", readiness: [breakerReadiness(breakers)] });
 */
import type { CheckResult, ReadinessCheck } from "../../core/readiness.ts";
import type { CircuitBreaker } from "./circuit_breaker.ts";
import type { BreakerRegistry } from "./registry.ts";

/** Options of {@link breakerReadiness}. */
export interface BreakerReadinessOptions {
  /** Check name in the `/ready` body (default `circuits`). */
  name?: string;
  /** An open breaker on a critical dependency fails readiness; otherwise it warns (default false). */
  critical?: boolean;
}

/**
 * A readiness check over breakers: `fail` when any is open (reported as `warn`
 * for a non-critical dependency), `warn` while one is probing (half-open).
 * No I/O: it reads in-memory state, so it is safe to run on every probe.
 */
export function breakerReadiness(
  source: CircuitBreaker | CircuitBreaker[] | BreakerRegistry,
  options: BreakerReadinessOptions = {},
): ReadinessCheck {
  const all = (): Iterable<CircuitBreaker> =>
    Array.isArray(source) ? source : "values" in source ? source.values() : [source];
  return {
    name: options.name ?? "circuits",
    critical: options.critical ?? false,
    check(): Promise<CheckResult> {
      let total = 0;
      let open = 0;
      let probing = 0;
      for (const b of all()) {
        total++;
        const kind = b.state.kind;
        if (kind === "open") open++;
        else if (kind === "half_open") probing++;
      }
      // Counts only: breaker keys name internal dependencies.
      if (open > 0) return Promise.resolve({ status: "fail", detail: `${open} of ${total} open` });
      if (probing > 0) {
        return Promise.resolve({ status: "warn", detail: `${probing} of ${total} half-open` });
      }
      return Promise.resolve({ status: "pass" });
    },
  };
}
