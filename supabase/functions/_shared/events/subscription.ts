/**
 * Subscription and projection definitions: what a worker registers
 * (`events.subscribe`) and drives ({@link runSubscriptions}).
 *
 * A subscription's `handler` runs at least once per matching event, in order
 * within a stream; its side effects must tolerate a redelivery. A projection's
 * `apply(tx, event)` runs inside the transaction that also acknowledges the
 * event, so each event changes the read model exactly once.
 *
 * @example
 * const audit = defineSubscription({
 *   name: "audit",
 *   filter: { streamPrefix: "order-" },
 *   handler: async (event, { signal }) => { await ship(event, signal); },
 * });
 */
import type { TransactionSql } from "npm:postgres@3";
import type { Logger } from "../core/log.ts";
import type { TraceContext } from "../core/trace.ts";

/** An event as a subscription receives it. */
export interface EventRecord {
  /** Global position: an opaque decimal string (compare with BigInt; it may pass 2^53). */
  position: string;
  stream: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  /** Version within the stream, from 1. */
  version: number;
  createdAt: Date;
}

/** Which events a subscription receives: streams starting with a prefix, and/or these types. */
export interface EventFilter {
  streamPrefix?: string;
  types?: string[];
}

/** What a handler gets besides the event. */
export interface DeliveryContext {
  /** Aborts when the handler's timeout passes or the worker shuts down. */
  signal: AbortSignal;
  /** Deliveries of this event so far, this one included (1 on first delivery). */
  attempt: number;
  subscription: string;
  /**
   * This delivery's span: the trace the event was appended under
   * (`metadata.traceparent`) with a span id of its own, or a new trace. Pass it on
   * (`enqueue(..., { trace })`, `outboundFetch`) so the work it causes joins the trace.
   */
  readonly trace: TraceContext;
  /** The worker's logger with subscription, stream, position, attempt, traceId, spanId, parentSpanId. */
  readonly log: Logger;
}

/** Settings shared by subscriptions and projections. */
export interface ConsumerOptions {
  /** `[A-Za-z0-9_.:-]{1,128}`; the subscription's name in `events.subscriptions`. */
  name: string;
  filter?: EventFilter;
  /** Where a NEW subscription starts: every event in the log, or what commits from now on. */
  startAt?: "beginning" | "now";
  /** Deliveries of one event before it goes to the dead letters (default 5). */
  maxAttempts?: number;
  /** Per event; a handler still running then counts as failed (default 10 s). */
  timeoutMs?: number;
  /** Wait before redelivering a failed event (default: 1 s doubling, at most 60 s). */
  retryDelayMs?: (attempt: number) => number;
}

/** A subscription whose handler runs at least once per event. */
export interface SubscriptionDefinition extends ConsumerOptions {
  kind: "subscription";
  handler(event: EventRecord, ctx: DeliveryContext): unknown;
}

/** A projection: `apply` writes the read model in the transaction that acknowledges the event. */
export interface ProjectionDefinition extends ConsumerOptions {
  kind: "projection";
  apply(tx: TransactionSql, event: EventRecord, ctx: DeliveryContext): unknown;
}

/** Anything the worker drives from the event log. */
export type ConsumerDefinition = SubscriptionDefinition | ProjectionDefinition;

/** Defaults of {@link ConsumerOptions}. */
export const CONSUMER_DEFAULTS = {
  maxAttempts: 5,
  timeoutMs: 10_000,
  retryDelayMs: (attempt: number) => Math.min(60_000, 1_000 * 2 ** Math.max(0, attempt - 1)),
} as const;

const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

function checkOptions(o: ConsumerOptions): void {
  if (typeof o.name !== "string" || !NAME.test(o.name)) {
    throw new TypeError(`subscription name must match ${NAME}, got ${JSON.stringify(o.name)}`);
  }
  const max = o.maxAttempts ?? CONSUMER_DEFAULTS.maxAttempts;
  if (!Number.isInteger(max) || max < 1 || max > 100) {
    throw new TypeError(`${o.name}: maxAttempts must be an integer in 1..100`);
  }
  const timeout = o.timeoutMs ?? CONSUMER_DEFAULTS.timeoutMs;
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new TypeError(`${o.name}: timeoutMs must be a positive number`);
  }
}

/** Defines a subscription: `handler` runs at least once per matching event, in stream order. */
export function defineSubscription(
  options: ConsumerOptions & { handler: SubscriptionDefinition["handler"] },
): SubscriptionDefinition {
  checkOptions(options);
  return { ...options, kind: "subscription" };
}

/** Defines a projection: `apply(tx, event)` and the acknowledgement commit together. */
export function defineProjection(
  options: ConsumerOptions & { apply: ProjectionDefinition["apply"] },
): ProjectionDefinition {
  checkOptions(options);
  return { ...options, kind: "projection" };
}
