/**
 * One subscription's loop inside {@link runSubscriptions}: claim a batch, deliver
 * each stream's events in order (streams in parallel), settle the batch.
 */
import { describeError } from "../core/errors.ts";
import { createLogger, type Logger } from "../core/log.ts";
import type { Clock } from "../core/time.ts";
import {
  deliverToHandler,
  deliverToProjection,
  type StreamOutcome,
  type StreamRun,
} from "./deliver_stream.ts";
import type { SubscriptionSummary, SubscriptionWorkerOptions } from "./run_subscriptions.ts";
import {
  ackEvents,
  type ClaimedEvent,
  claimEvents,
  extendEventLease,
  nackEvent,
  releaseEvents,
} from "./sql.ts";
import { CONSUMER_DEFAULTS, type ConsumerDefinition } from "./subscription.ts";

/** Notifications (NOTIFY `events`) as a count, and a wait that ends at the next one. */
export interface Wakeup {
  /** Notifications so far. */
  readonly count: number;
  /** Waits `ms`, or until a notification; resolves at once if `count` has moved past `seen`. */
  idle(ms: number, seen: number): Promise<void>;
}

/** One subscription's claim, deliver, settle loop. */
export class SubscriptionLoop {
  readonly #log: Logger;
  readonly #workerId: string;
  readonly #leaseMs: number;

  constructor(
    readonly def: ConsumerDefinition,
    readonly options: SubscriptionWorkerOptions,
    readonly summary: SubscriptionSummary,
    readonly stop: AbortSignal,
    readonly deadline: number,
    readonly now: Clock,
    readonly wakeup: Wakeup,
  ) {
    this.#log = options.log ?? createLogger("info", { component: "events-worker" });
    this.#workerId = options.workerId ?? `e-${crypto.randomUUID().slice(0, 8)}`;
    this.#leaseMs = options.leaseMs ?? 30_000;
  }

  async run(): Promise<void> {
    const { sql, batchSize = 100, mode = "drain", pollMs = 1_000 } = this.options;
    const { wakeup } = this;
    let seen = wakeup.count;
    // Re-poll delay after a notification whose event was not claimable yet (0: none).
    let backoff = 0;
    while (!this.stop.aborted) {
      // Notified since the last claim began: something committed after it.
      const hinted = wakeup.count !== seen;
      seen = wakeup.count;
      try {
        const batch = await claimEvents(
          sql,
          this.def.name,
          batchSize,
          this.#leaseMs,
          this.#workerId,
        );
        if (batch.length === 0) {
          if (mode === "drain") return;
          // NOTIFY comes at commit, but an event is claimable only once every older
          // transaction has ended (the settled bound): after a notification an empty
          // claim looks again after 1, 2, 4 ... ms; a new notification ends any wait.
          if (hinted) backoff = 1;
          else if (backoff > 0) backoff *= 2;
          if (backoff >= pollMs) backoff = 0;
          await wakeup.idle(backoff || pollMs, seen);
          continue;
        }
        backoff = 0;
        this.summary.claimed += batch.length;
        await this.#settle(batch[0]!.token, await this.#deliver(batch));
      } catch (error) {
        // A drain reports it; a long-lived listener outlives a database restart (what it
        // leased and did not settle comes back when the lease ends).
        if (mode === "drain") throw error;
        this.#log.warn("events worker: database error", {
          subscription: this.def.name,
          error: describeError(error),
        });
        await wakeup.idle(pollMs, wakeup.count);
      }
    }
  }

  /** Delivers each stream's events in order, up to `concurrency` streams at once. */
  async #deliver(batch: ClaimedEvent[]): Promise<StreamOutcome[]> {
    const streams = new Map<string, ClaimedEvent[]>();
    for (const e of batch) {
      const list = streams.get(e.stream);
      if (list) list.push(e);
      else streams.set(e.stream, [e]);
    }
    const run = this.#streamRun(batch[0]!.token);
    const queue = [...streams.values()];
    const outcomes: StreamOutcome[] = [];
    const lane = async () => {
      for (let events = queue.shift(); events; events = queue.shift()) {
        outcomes.push(await this.#deliverStream(events, run));
      }
    };
    const lanes = Math.max(1, Math.min(this.options.concurrency ?? 10, queue.length));
    await Promise.all(Array.from({ length: lanes }, lane));
    return outcomes;
  }

  async #deliverStream(events: ClaimedEvent[], run: StreamRun): Promise<StreamOutcome> {
    try {
      return this.def.kind === "projection"
        ? await deliverToProjection(this.def, events, run)
        : await deliverToHandler(this.def, events, run);
    } catch (error) {
      // The database failed under us: nothing of this stream is recorded; its lease runs out.
      this.#log.warn("event delivery failed", {
        subscription: this.def.name,
        stream: events[0]!.stream,
        error: describeError(error),
      });
      return { kind: "stopped", handled: [], acked: true };
    }
  }

  #streamRun(token: string): StreamRun {
    const { sql } = this.options;
    let until = this.now() + this.#leaseMs;
    let extending: Promise<boolean> | null = null;
    let lost = false;
    return {
      sql,
      stop: this.stop,
      log: this.#log,
      spans: this.options.spans,
      timeLeft: () => this.deadline - this.now(),
      holdLease: () => {
        if (lost) return Promise.resolve(false);
        if (this.now() < until - this.#leaseMs / 2) return Promise.resolve(true);
        extending ??= extendEventLease(sql, this.def.name, token, this.#leaseMs).then((held) => {
          extending = null;
          if (held) until = this.now() + this.#leaseMs;
          else lost = true;
          return held;
        });
        return extending;
      },
    };
  }

  /** Writes a batch's outcome: acks, nacks (retry or dead letter), a release of the rest. */
  async #settle(token: string, outcomes: StreamOutcome[]): Promise<void> {
    const { sql } = this.options;
    const name = this.def.name;
    const toAck = outcomes.filter((o) => !o.acked).flatMap((o) => o.handled);
    this.summary.handled += await ackEvents(sql, name, token, toAck) +
      outcomes.filter((o) => o.acked).reduce((n, o) => n + o.handled.length, 0);
    const maxAttempts = this.def.maxAttempts ?? CONSUMER_DEFAULTS.maxAttempts;
    const delay = this.def.retryDelayMs ?? CONSUMER_DEFAULTS.retryDelayMs;
    for (const o of outcomes) {
      if (o.kind !== "failed") continue;
      const dead = o.attempt >= maxAttempts;
      const n = await nackEvent(
        sql,
        name,
        token,
        o.failed.position,
        o.error,
        dead,
        delay(o.attempt),
      );
      if (n === 0) continue; // the lease was taken over: the new holder decides
      if (dead) this.summary.deadLettered++;
      else this.summary.retried++;
      // Under the failed delivery's span: subscription, stream, position, attempt, trace ids.
      o.log.warn(dead ? "event dead-lettered" : "event will be retried", { error: o.error });
    }
    if (outcomes.some((o) => o.kind === "stopped")) {
      await releaseEvents(sql, name, token);
      this.summary.released++;
    }
  }
}
