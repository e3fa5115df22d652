/**
 * A minimal per-host circuit breaker for webhook delivery: after `threshold`
 * consecutive failures a host is skipped for `cooldownMs`, then one trial call
 * decides. Placeholder for the shared breaker (_shared/circuit_breaker.ts),
 * which implements the same {@link Breaker} interface.
 */

/** What webhook delivery needs from a breaker. */
export interface Breaker {
  execute<T>(fn: () => Promise<T>): Promise<T>;
}

/** The call was not made: the host's breaker is open (retried later with backoff). */
export class BreakerOpenError extends Error {
  constructor(readonly key: string, readonly retryAfterMs: number) {
    super(`circuit open for ${key}; retry in ${Math.ceil(retryAfterMs)} ms`);
    this.name = "BreakerOpenError";
  }
}

type State =
  | { kind: "closed"; failures: number }
  | { kind: "open"; until: number }
  | { kind: "half_open" };

/** One breaker per key (host). */
export function breakerPerKey(
  options: { threshold?: number; cooldownMs?: number; now?: () => number } = {},
): (key: string) => Breaker {
  const threshold = options.threshold ?? 5;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const now = options.now ?? Date.now;
  const states = new Map<string, State>();
  return (key) => ({
    async execute<T>(fn: () => Promise<T>): Promise<T> {
      const state = states.get(key) ?? { kind: "closed", failures: 0 };
      switch (state.kind) {
        case "open":
          if (now() < state.until) throw new BreakerOpenError(key, state.until - now());
          states.set(key, { kind: "half_open" });
          break;
        case "half_open":
          throw new BreakerOpenError(key, cooldownMs); // one trial at a time
        case "closed":
          break;
      }
      try {
        const result = await fn();
        states.set(key, { kind: "closed", failures: 0 });
        return result;
      } catch (error) {
        const s = states.get(key) ?? state;
        const failures = s.kind === "closed" ? s.failures + 1 : threshold;
        states.set(
          key,
          failures >= threshold
            ? { kind: "open", until: now() + cooldownMs }
            : { kind: "closed", failures },
        );
        throw error;
      }
    },
  });
}
