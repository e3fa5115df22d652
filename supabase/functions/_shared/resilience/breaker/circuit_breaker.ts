/**
 * A circuit breaker driven by timestamps from an injected clock, never by
 * timers: `open` becomes `half_open` when a caller arrives after `openUntil`.
 *
 * @example
 * const breaker = new CircuitBreaker({ key: "api.example.com" });
 * const res = await breaker.execute((signal) => fetch(url, { signal }));
 */
import {
  BreakerTimeoutError,
  type CircuitOpenError,
  constantOpenError,
  defaultIsFailure,
  defaultIsFailureResult,
  type FailureClassifier,
  type ResultClassifier,
} from "./errors.ts";
import { deadlines, DeadlineSignals } from "../../core/time.ts";
import { type TripCounter, tripCounter, type TripPolicy } from "./policy.ts";

/** Where an open state came from: this isolate's own calls, or the shared store. */
export type OpenSource = "local" | "shared";

/** The breaker's state; serialisable, replaced (never mutated) on each change. */
export type BreakerState =
  | { readonly kind: "closed"; readonly since: number }
  | {
    readonly kind: "open";
    readonly since: number;
    readonly openUntil: number;
    readonly source: OpenSource;
  }
  | {
    readonly kind: "half_open";
    readonly since: number;
    /** Probes allowed in this half-open round. */
    readonly permits: number;
    readonly inFlight: number;
    readonly successes: number;
    /** A probe still running after this instant is deemed hung: the breaker reopens. */
    readonly probeDeadline: number;
  };

/** Observes state changes (shared-state publication, metrics, logs). */
export type TransitionListener = (
  breaker: CircuitBreaker,
  from: BreakerState,
  to: BreakerState,
) => void;

/** Lets a shared store refresh this breaker; called on every call, must be cheap. */
export interface BreakerSync {
  /** Epoch ms before which no refresh is due; the breaker checks it inline. */
  nextRefreshAt: number;
  refresh(breaker: CircuitBreaker, now: number): void;
}

/** Construction options. */
export interface BreakerOptions {
  /** Identifies the dependency (host, service name); used in errors and the shared store. */
  key: string;
  /** Default: 5 consecutive failures. */
  policies?: TripPolicy[];
  /** How long the breaker stays open before probing (default 30 s). */
  openMs?: number;
  /** Probes allowed while half-open; all must succeed to close (default 1). */
  halfOpenPermits?: number;
  /**
   * Per-call time budget (default 10 s), delivered as an AbortSignal: `fn` must
   * honour it (fetch does). It also bounds how long a probe may hold its
   * permit, so a probe that ignores its signal still cannot wedge the breaker.
   */
  timeoutMs?: number;
  isFailure?: FailureClassifier;
  isFailureResult?: ResultClassifier;
  onTransition?: TransitionListener;
}

/** Injected collaborators. */
export interface BreakerDeps {
  /** Epoch milliseconds. */
  now: () => number;
  /** Source of per-call timeout signals. */
  deadlines: DeadlineSignals;
}

/** Per-call options. */
export interface CallOptions {
  /** The caller's own cancellation; an abort by the caller is not the dependency's failure. */
  signal?: AbortSignal;
  timeoutMs?: number;
}

const REJECT = -1;
const SUCCESS = "success";
const FAILURE = "failure";
const NEUTRAL = "neutral";

/** How a call ended, for the breaker: `neutral` (e.g. the caller gave up) counts neither way. */
export type CallOutcome = typeof SUCCESS | typeof FAILURE | typeof NEUTRAL;

/** A circuit breaker for one dependency. */
export class CircuitBreaker {
  readonly key: string;
  readonly openMs: number;
  readonly halfOpenPermits: number;
  readonly timeoutMs: number;
  /** The one error every refused call is rejected with. */
  readonly openError: CircuitOpenError;
  /** Optional shared-state hook (see breaker_store.ts). */
  sync: BreakerSync | undefined;
  #state: BreakerState;
  /** Bumped on every transition so late outcomes from an older state are ignored. */
  #generation = 0;
  readonly #counters: TripCounter[];
  readonly #now: () => number;
  readonly #isFailure: FailureClassifier;
  readonly #isFailureResult: ResultClassifier;
  readonly #onTransition: TransitionListener[] = [];
  readonly #rejected: Promise<never>;
  readonly #refused: Promise<CircuitOpenError>;
  readonly #deadlines: DeadlineSignals;

  constructor(options: BreakerOptions, deps: Partial<BreakerDeps> = {}) {
    this.key = options.key;
    this.openMs = options.openMs ?? 30_000;
    this.halfOpenPermits = Math.max(1, Math.floor(options.halfOpenPermits ?? 1));
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = deps.now ?? Date.now;
    this.#deadlines = deps.deadlines ?? deadlines;
    this.#counters = (options.policies ?? [{ kind: "consecutive", failures: 5 }]).map(tripCounter);
    this.#isFailure = options.isFailure ?? defaultIsFailure;
    this.#isFailureResult = options.isFailureResult ?? defaultIsFailureResult;
    if (options.onTransition) this.#onTransition.push(options.onTransition);
    this.#state = { kind: "closed", since: this.#now() };
    this.openError = constantOpenError(this.key, () => this.retryAfterMs());
    this.#rejected = Promise.reject(this.openError);
    this.#rejected.catch(() => {}); // handled by whoever awaits it; never "unhandled"
    this.#refused = Promise.resolve(this.openError);
  }

  /** The current state, after applying any transition the clock makes due. */
  get state(): BreakerState {
    this.#advance(this.#now());
    return this.#state;
  }

  /** Registers a transition observer. */
  onTransition(listener: TransitionListener): void {
    this.#onTransition.push(listener);
  }

  /** Milliseconds until a refused caller may try again (0 if a call would be let through). */
  retryAfterMs(): number {
    const now = this.#now();
    this.#advance(now);
    const s = this.#state;
    if (s.kind === "open") return s.openUntil - now;
    if (s.kind === "half_open" && s.inFlight + s.successes >= s.permits) {
      return Math.max(0, s.probeDeadline - now);
    }
    return 0;
  }

  /**
   * Runs `fn` through the breaker with a timeout. Refused calls reject with
   * {@link openError} (the same object and promise every time).
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, options?: CallOptions): Promise<T> {
    // One clock read per call: it stamps the window bucket and the deadline too.
    const now = this.#now();
    const ticket = this.#acquire(now);
    if (ticket === REJECT) return this.#rejected;
    return this.#run(fn, ticket, now, options);
  }

  /**
   * Like {@link execute}, but a refusal resolves to {@link openError} instead of
   * rejecting: no exception is thrown, which is the cheapest refusal there is.
   *
   * @example
   * const r = await breaker.attempt((signal) => fetch(url, { signal }));
   * if (r === breaker.openError) return fallback();
   */
  attempt<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    options?: CallOptions,
  ): Promise<T | CircuitOpenError> {
    const now = this.#now();
    const ticket = this.#acquire(now);
    if (ticket === REJECT) return this.#refused;
    return this.#run(fn, ticket, now, options);
  }

  /**
   * Low-level entry: returns a ticket (>= 0) to pass to {@link release}, or -1
   * when the call must be refused. Prefer {@link execute}.
   */
  tryAcquire(): number {
    return this.#acquire(this.#now());
  }

  #acquire(now: number): number {
    const sync = this.sync;
    if (sync !== undefined && now >= sync.nextRefreshAt) sync.refresh(this, now);
    const s = this.#state;
    if (s.kind === "closed") return this.#generation;
    if (s.kind === "open" && now < s.openUntil) return REJECT;
    this.#advance(now);
    const h = this.#state;
    if (h.kind !== "half_open" || h.inFlight + h.successes >= h.permits) return REJECT;
    this.#state = { ...h, inFlight: h.inFlight + 1, probeDeadline: now + this.timeoutMs };
    return this.#generation;
  }

  /** Reports the outcome of a call admitted with `ticket`. */
  release(ticket: number, outcome: CallOutcome): void {
    this.#release(ticket, outcome, this.#now());
  }

  /** `at` is when the call started: rolling windows bucket calls by their start. */
  #release(ticket: number, outcome: CallOutcome, at: number): void {
    if (ticket !== this.#generation) return; // started under an older state: ignore
    const s = this.#state;
    switch (s.kind) {
      case "closed": {
        if (outcome === NEUTRAL) return;
        let trip = false;
        for (const c of this.#counters) trip = c.record(at, outcome === FAILURE) || trip;
        if (trip) this.#openNow();
        return;
      }
      case "half_open": {
        if (outcome === FAILURE) return this.#openNow();
        const inFlight = s.inFlight - 1;
        if (outcome === NEUTRAL) return void (this.#state = { ...s, inFlight });
        const successes = s.successes + 1;
        if (successes >= s.permits) return this.forceClose();
        this.#state = { ...s, inFlight, successes };
        return;
      }
      case "open":
        return;
      default: {
        const never: never = s;
        throw new TypeError(`unknown breaker state ${JSON.stringify(never)}`);
      }
    }
  }

  /** Opens the breaker until `openUntil` (used by the shared store and by operators). */
  forceOpen(openUntil: number, source: OpenSource = "local"): void {
    this.#open(this.#now(), openUntil, source);
  }

  /** Closes the breaker and forgets all counts. */
  forceClose(): void {
    this.#transition({ kind: "closed", since: this.#now() });
  }

  async #run<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    ticket: number,
    startedAt: number,
    options: CallOptions | undefined,
  ): Promise<T> {
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    const deadline = this.#deadlines.signal(timeoutMs, startedAt);
    const caller = options?.signal;
    const signal = caller === undefined ? deadline : AbortSignal.any([caller, deadline]);
    try {
      const value = await fn(signal);
      this.#release(ticket, this.#isFailureResult(value) ? FAILURE : SUCCESS, startedAt);
      return value;
    } catch (error) {
      if (caller?.aborted) {
        this.#release(ticket, NEUTRAL, startedAt); // the caller gave up: says nothing about the dependency
        throw error;
      }
      if (deadline.aborted) {
        this.#release(ticket, FAILURE, startedAt);
        throw new BreakerTimeoutError(this.key, timeoutMs, error);
      }
      this.#release(ticket, this.#isFailure(error) ? FAILURE : SUCCESS, startedAt);
      throw error;
    }
  }

  /** Applies transitions that are due by the clock alone. */
  #advance(now: number): void {
    const s = this.#state;
    if (s.kind === "open" && now >= s.openUntil) {
      this.#transition({
        kind: "half_open",
        since: now,
        permits: this.halfOpenPermits,
        inFlight: 0,
        successes: 0,
        probeDeadline: now,
      });
    } else if (s.kind === "half_open" && s.inFlight > 0 && now > s.probeDeadline) {
      this.#open(now, now + this.openMs, "local"); // a probe hung past its budget
    }
  }

  #openNow(): void {
    const now = this.#now();
    this.#open(now, now + this.openMs, "local");
  }

  #open(now: number, openUntil: number, source: OpenSource): void {
    this.#transition({ kind: "open", since: now, openUntil, source });
  }

  #transition(next: BreakerState): void {
    const from = this.#state;
    this.#state = next;
    this.#generation++;
    for (const c of this.#counters) c.reset();
    for (const listener of this.#onTransition) listener(this, from, next);
  }
}
