/**
 * Keyed breakers (one per host or dependency) in a bounded LRU map, so a
 * function that talks to arbitrary hosts (webhooks) cannot grow without limit.
 *
 * @example
 * const breakers = new BreakerRegistry({ maxSize: 500, defaults: { openMs: 10_000 } });
 * await breakers.get(new URL(url).host).execute((signal) => fetch(url, { signal }));
 */
import { type BreakerDeps, type BreakerOptions, CircuitBreaker } from "./circuit_breaker.ts";

/** Construction options. */
export interface RegistryOptions {
  /** Most breakers kept; the least recently used is dropped beyond it (default 1000). */
  maxSize?: number;
  /** Options for every breaker the registry creates (the key is filled in). */
  defaults?: Omit<BreakerOptions, "key">;
  /** Called for each new breaker, e.g. to attach shared state. */
  onCreate?: (breaker: CircuitBreaker) => void;
}

/** A bounded map of breakers by key, least recently used evicted first. */
export class BreakerRegistry {
  readonly maxSize: number;
  // A Map iterates in insertion order; re-inserting on use makes the first key the LRU one.
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #options: RegistryOptions;
  readonly #deps: Partial<BreakerDeps>;

  constructor(options: RegistryOptions = {}, deps: Partial<BreakerDeps> = {}) {
    this.maxSize = Math.max(1, options.maxSize ?? 1000);
    this.#options = options;
    this.#deps = deps;
  }

  /** The breaker for `key`, created on first use. */
  get(key: string): CircuitBreaker {
    const found = this.#breakers.get(key);
    if (found !== undefined) {
      this.#breakers.delete(key);
      this.#breakers.set(key, found);
      return found;
    }
    const created = new CircuitBreaker({ ...this.#options.defaults, key }, this.#deps);
    this.#options.onCreate?.(created);
    this.#breakers.set(key, created);
    if (this.#breakers.size > this.maxSize) {
      this.#breakers.delete(this.#breakers.keys().next().value!);
    }
    return created;
  }

  /** The breaker for `key` if it exists, without creating it or refreshing its recency. */
  peek(key: string): CircuitBreaker | undefined {
    return this.#breakers.get(key);
  }

  get size(): number {
    return this.#breakers.size;
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.#breakers.keys()];
  }

  /** Every breaker, least recently used first (readiness reports them all). */
  values(): IterableIterator<CircuitBreaker> {
    return this.#breakers.values();
  }
}
