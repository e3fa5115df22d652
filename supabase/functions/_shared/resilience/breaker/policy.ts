/**
 * Trip policies: when a closed breaker should open. Counters live in fixed
 * typed arrays so recording an outcome allocates nothing.
 */

/** Open after `failures` failures in a row. */
export interface ConsecutiveFailuresPolicy {
  kind: "consecutive";
  failures: number;
}

/**
 * Open when, over the last `windowMs`, at least `minimumCalls` calls were made
 * and the failed share reached `threshold` (0..1). The window is split into
 * `buckets` slices (default 10) that expire one at a time.
 */
export interface FailureRatioPolicy {
  kind: "ratio";
  threshold: number;
  windowMs: number;
  minimumCalls: number;
  buckets?: number;
}

/** Any one policy tripping opens the breaker. */
export type TripPolicy = ConsecutiveFailuresPolicy | FailureRatioPolicy;

/** Per-breaker counters for one policy. */
export interface TripCounter {
  /** Records an outcome; returns true when the breaker should open now. */
  record(now: number, failed: boolean): boolean;
  /** Forgets everything (on every state change). */
  reset(): void;
}

class ConsecutiveCounter implements TripCounter {
  #failures = 0;
  constructor(readonly limit: number) {}

  record(_now: number, failed: boolean): boolean {
    this.#failures = failed ? this.#failures + 1 : 0;
    return this.#failures >= this.limit;
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** A ring of time buckets; bucket i holds calls made in slice `epochs[i]`. */
class RollingWindowCounter implements TripCounter {
  readonly #bucketMs: number;
  readonly #epochs: Float64Array;
  readonly #totals: Uint32Array;
  readonly #failed: Uint32Array;

  constructor(readonly policy: FailureRatioPolicy) {
    const n = Math.max(1, Math.floor(policy.buckets ?? 10));
    this.#bucketMs = Math.max(1, policy.windowMs / n);
    this.#epochs = new Float64Array(n).fill(-1);
    this.#totals = new Uint32Array(n);
    this.#failed = new Uint32Array(n);
  }

  record(now: number, failed: boolean): boolean {
    const n = this.#epochs.length;
    const epoch = Math.floor(now / this.#bucketMs);
    const i = epoch % n;
    if (this.#epochs[i] !== epoch) {
      this.#epochs[i] = epoch;
      this.#totals[i] = 0;
      this.#failed[i] = 0;
    }
    this.#totals[i]!++;
    if (!failed) return false; // a success can never trip the breaker
    this.#failed[i]!++;
    let total = 0;
    let failures = 0;
    for (let j = 0; j < n; j++) {
      if (this.#epochs[j]! > epoch - n) {
        total += this.#totals[j]!;
        failures += this.#failed[j]!;
      }
    }
    return total >= this.policy.minimumCalls && failures / total >= this.policy.threshold;
  }

  reset(): void {
    this.#epochs.fill(-1);
  }
}

/** Builds the counter a policy needs; throws on a nonsensical policy. */
export function tripCounter(policy: TripPolicy): TripCounter {
  switch (policy.kind) {
    case "consecutive":
      if (!(policy.failures >= 1)) throw new RangeError("consecutive.failures must be >= 1");
      return new ConsecutiveCounter(policy.failures);
    case "ratio":
      if (!(policy.threshold > 0 && policy.threshold <= 1)) {
        throw new RangeError("ratio.threshold must be in (0, 1]");
      }
      if (!(policy.windowMs > 0)) throw new RangeError("ratio.windowMs must be > 0");
      if (!(policy.minimumCalls >= 1)) throw new RangeError("ratio.minimumCalls must be >= 1");
      return new RollingWindowCounter(policy);
    default: {
      const never: never = policy;
      throw new TypeError(`unknown trip policy ${JSON.stringify(never)}`);
    }
  }
}
