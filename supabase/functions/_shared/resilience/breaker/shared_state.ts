/**
 * Advisory breaker state shared across isolates through Postgres. Each
 * isolate decides locally; trips and recoveries are published (fire and
 * forget), and a key is re-read at most once per `stalenessMs`, triggered by a
 * call, never awaited by it. When the store is unreachable, breakers simply
 * keep their local state.
 *
 * @example
 * const shared = new SharedBreakerState(postgresBreakerStore(sql));
 * const breakers = new BreakerRegistry({ onCreate: (b) => shared.attach(b) });
 */
import type { Sql } from "npm:postgres@3";
import type { BreakerState, BreakerSync, CircuitBreaker } from "./circuit_breaker.ts";
import { errorMessage } from "../../core/errors.ts";
import type { WarnLog } from "../../core/log.ts";

/** The latest trip or recovery some isolate published for a key. */
export interface SharedRecord {
  state: "open" | "closed";
  openUntil: number | null;
  /** Store clock, epoch ms: orders publications. */
  updatedAt: number;
  updatedBy: string;
}

/** Where shared state lives (Postgres in production; anything in unit tests). */
export interface BreakerStore {
  publish(
    key: string,
    state: "open" | "closed",
    openUntil: number | null,
    by: string,
  ): Promise<void>;
  read(key: string): Promise<SharedRecord | null>;
}

/** The store backed by `resilience.breaker_publish` / `resilience.breaker_read`. */
export function postgresBreakerStore(sql: Sql): BreakerStore {
  return {
    async publish(key, state, openUntil, by) {
      await sql`select resilience.breaker_publish(${key}, ${state}, ${openUntil}, ${by})`;
    },
    async read(key) {
      const [row] = await sql`select * from resilience.breaker_read(${[key]}::text[])`;
      if (!row) return null;
      return {
        state: row.state,
        openUntil: row.open_until_ms === null ? null : Number(row.open_until_ms),
        updatedAt: Number(row.updated_at_ms),
        updatedBy: row.updated_by,
      };
    },
  };
}

/** Options of {@link SharedBreakerState}. */
export interface SharedStateOptions {
  /** A key is read at most once per this many ms (default 1000). */
  stalenessMs?: number;
  /** Identifies this isolate's publications (default: a random UUID). */
  isolateId?: string;
  log?: WarnLog;
  /** Epoch ms; must be the clock the attached breakers use. */
  now?: () => number;
}

/** Connects breakers to a {@link BreakerStore}. */
export class SharedBreakerState {
  readonly isolateId: string;
  readonly stalenessMs: number;
  readonly #store: BreakerStore;
  readonly #log: WarnLog | undefined;
  readonly #now: () => number;
  readonly #pending = new Set<Promise<void>>();
  #healthy = true;

  constructor(store: BreakerStore, options: SharedStateOptions = {}) {
    this.#store = store;
    this.isolateId = options.isolateId ?? crypto.randomUUID();
    this.stalenessMs = options.stalenessMs ?? 1000;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /** Starts publishing `breaker`'s local trips/recoveries and refreshing it from the store. */
  attach(breaker: CircuitBreaker): void {
    let lastSeen = 0;
    let reading = false;
    const sync: BreakerSync = {
      nextRefreshAt: 0,
      refresh: (b) => {
        sync.nextRefreshAt = this.#now() + this.stalenessMs;
        if (reading) return;
        reading = true;
        this.#track(
          this.#store.read(b.key).then((record) => {
            if (
              !record || record.updatedBy === this.isolateId || record.updatedAt <= lastSeen
            ) return;
            lastSeen = record.updatedAt;
            this.#apply(b, record);
          }).finally(() => (reading = false)),
        );
      },
    };
    breaker.sync = sync;
    breaker.onTransition((b, from, to) => {
      const state = published(from, to);
      if (state === null) return;
      const openUntil = to.kind === "open" ? to.openUntil : null;
      // Publications of one isolate are serialised: a trip and the recovery right
      // after it must reach the store in that order, whatever the pool does.
      const publish = this.#publishing.catch(() => {}).then(() =>
        this.#store.publish(b.key, state, openUntil, this.isolateId)
      );
      this.#publishing = publish;
      this.#track(publish);
    });
  }

  /** Resolves when every publication and read started so far has settled. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  #publishing: Promise<void> = Promise.resolve();

  #apply(b: CircuitBreaker, record: SharedRecord): void {
    const local = b.state;
    if (record.state === "open" && record.openUntil !== null && record.openUntil > this.#now()) {
      if (local.kind !== "open") b.forceOpen(record.openUntil, "shared");
    } else if (record.state === "closed" && local.kind === "open" && local.source === "shared") {
      b.forceClose(); // the isolate whose trip we followed has seen the dependency recover
    }
  }

  #track(work: Promise<void>): void {
    const p = work.then(() => {
      if (!this.#healthy) this.#log?.warn("breaker store reachable again");
      this.#healthy = true;
    }, (error) => {
      // Warn once per outage, not once per call: local state carries on meanwhile.
      if (this.#healthy) {
        this.#log?.warn("breaker store unreachable; using local breaker state", {
          error: errorMessage(error),
        });
      }
      this.#healthy = false;
    }).finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }
}

/** What a transition tells other isolates: local trips and local recoveries only. */
function published(from: BreakerState, to: BreakerState): "open" | "closed" | null {
  if (to.kind === "open" && to.source === "local") return "open";
  if (to.kind === "closed" && from.kind === "half_open") return "closed";
  return null;
}
