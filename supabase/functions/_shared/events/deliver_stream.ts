/**
 * One stream's share of a claimed batch: its events in version order, through a
 * subscription's handler or a projection's transaction. The caller (the worker
 * loop) writes the outcome: acks, a nack, or a release.
 */
import type { Sql } from "npm:postgres@3";
import { describeError, isInstance } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { SpanExporter } from "../core/otlp.ts";
import { withTimeout } from "../core/time.ts";
import { DeliveryTrace } from "./delivery_trace.ts";
import { ackEvents, type ClaimedEvent } from "./sql.ts";
import {
  CONSUMER_DEFAULTS,
  type ConsumerDefinition,
  type DeliveryContext,
  type ProjectionDefinition,
} from "./subscription.ts";

/** What became of one stream's events. `acked`: the projection acknowledged `handled` itself. */
export type StreamOutcome =
  | { kind: "done"; handled: string[]; acked: boolean }
  | {
    kind: "failed";
    handled: string[];
    acked: boolean;
    failed: ClaimedEvent;
    attempt: number;
    error: string;
    /** The failed delivery's logger (its span's ids). */
    log: Logger;
  }
  /** Budget, shutdown or a lost lease stopped it; the rest goes back without an attempt. */
  | { kind: "stopped"; handled: string[]; acked: boolean };

/** What a stream's delivery needs from the worker loop. */
export interface StreamRun {
  sql: Sql;
  /** Aborts on shutdown or when the budget is spent. */
  stop: AbortSignal;
  /** Milliseconds a handler may still run (the budget's remainder). */
  timeLeft(): number;
  /** True while this claim's lease holds (extending it when half spent). */
  holdLease(): Promise<boolean>;
  /** The worker's logger; each delivery logs through a child with its span's ids. */
  log: Logger;
  /** Span export: one consumer span per handler call, when configured. */
  spans?: SpanExporter;
}

/** A handler ran past its timeout. */
export class EventHandlerTimeoutError extends Error {
  override readonly name = "EventHandlerTimeoutError";
  constructor(readonly timeoutMs: number, readonly byBudget: boolean) {
    super(`handler did not finish within ${timeoutMs} ms`);
  }
}

/** A projection's `ack` acknowledged fewer events than it applied: its lease was taken over. */
class LeaseLostError extends Error {
  override readonly name = "LeaseLostError";
}

/** The attempt of the i-th event of a stream's batch: only the first can have been tried before. */
const attemptOf = (events: readonly ClaimedEvent[], i: number) => i === 0 ? events[0]!.attempt : 1;

/** Each event's delivery span, under the trace it was appended with. */
const tracesOf = (def: ConsumerDefinition, events: readonly ClaimedEvent[], run: StreamRun) =>
  events.map((e, i) => new DeliveryTrace(e, def.name, attemptOf(events, i), run.log));

/**
 * Runs one handler call under its delivery's span, with the consumer's timeout
 * capped by what the budget leaves.
 */
async function runOne(
  def: ConsumerDefinition,
  run: StreamRun,
  fn: (ctx: DeliveryContext) => unknown,
  span: DeliveryTrace,
): Promise<void> {
  const own = def.timeoutMs ?? CONSUMER_DEFAULTS.timeoutMs;
  const left = run.timeLeft();
  const ms = Math.max(1, Math.min(own, left));
  const startMs = run.spans ? Date.now() : 0;
  let error: string | undefined;
  try {
    await withTimeout(
      (signal) =>
        fn({
          signal,
          attempt: span.attempt,
          subscription: def.name,
          get trace() {
            return span.trace;
          },
          get log() {
            return span.log;
          },
        }),
      ms,
      () => new EventHandlerTimeoutError(ms, left < own),
      run.stop,
    );
  } catch (e) {
    error = describeError(e);
    throw e;
  } finally {
    run.spans?.record({
      trace: span.trace,
      name: `event ${def.name}`,
      kind: "consumer",
      startMs,
      endMs: Date.now(),
      ...(error === undefined ? {} : { error }),
      attributes: {
        "event.subscription": def.name,
        "event.stream": span.event.stream,
        "event.position": span.event.position,
        "event.type": span.event.type,
        "event.attempt": span.attempt,
      },
    });
  }
}

/** A traced event says it was handled, so the logs follow a request through what it caused. */
function logHandled(span: DeliveryTrace): void {
  if (span.traced) span.log.info("event handled");
}

function failed(
  events: readonly ClaimedEvent[],
  spans: readonly DeliveryTrace[],
  i: number,
  error: unknown,
  acked: boolean,
): StreamOutcome {
  const handled = events.slice(0, i).map((e) => e.position);
  // Any value may be thrown, a Proxy whose traps throw included: never `instanceof` it directly.
  if (isInstance(error, EventHandlerTimeoutError) && error.byBudget) {
    return { kind: "stopped", handled, acked };
  }
  return {
    kind: "failed",
    handled,
    acked,
    failed: events[i]!,
    attempt: attemptOf(events, i),
    error: describeError(error),
    log: spans[i]!.log,
  };
}

/** Delivers a stream's events to a subscription handler, one at a time, in order. */
export async function deliverToHandler(
  def: Extract<ConsumerDefinition, { kind: "subscription" }>,
  events: readonly ClaimedEvent[],
  run: StreamRun,
): Promise<StreamOutcome> {
  const spans = tracesOf(def, events, run);
  for (let i = 0; i < events.length; i++) {
    const handled = events.slice(0, i).map((e) => e.position);
    if (run.stop.aborted || !(await run.holdLease())) {
      return { kind: "stopped", handled, acked: false };
    }
    try {
      await runOne(def, run, (ctx) => def.handler(events[i]!, ctx), spans[i]!);
    } catch (error) {
      return failed(events, spans, i, error, false);
    }
    logHandled(spans[i]!);
  }
  return { kind: "done", handled: events.map((e) => e.position), acked: false };
}

/**
 * Applies a stream's events and acknowledges them in one transaction. If an
 * apply fails at event i, everything rolls back; the events before i are then
 * applied and acknowledged again in a second transaction, and i is reported.
 */
export async function deliverToProjection(
  def: ProjectionDefinition,
  events: readonly ClaimedEvent[],
  run: StreamRun,
): Promise<StreamOutcome> {
  if (run.stop.aborted || !(await run.holdLease())) {
    return { kind: "stopped", handled: [], acked: false };
  }
  const spans = tracesOf(def, events, run);
  let failure: { at: number; error: unknown } | null = null;
  const applyAndAck = (count: number) =>
    run.sql.begin(async (tx) => {
      // A read-model statement that hangs is cut by Postgres, not left holding the transaction.
      const ms = def.timeoutMs ?? CONSUMER_DEFAULTS.timeoutMs;
      await tx`select set_config('statement_timeout', ${String(Math.ceil(ms))}, true)`;
      for (let i = 0; i < count; i++) {
        try {
          await runOne(def, run, (ctx) => def.apply(tx, events[i]!, ctx), spans[i]!);
        } catch (error) {
          failure = { at: i, error };
          throw error;
        }
      }
      const positions = events.slice(0, count).map((e) => e.position);
      const acked = await ackEvents(tx, def.name, events[0]!.token, positions);
      if (acked !== count) throw new LeaseLostError(`acknowledged ${acked} of ${count}`);
    });
  try {
    await applyAndAck(events.length);
    spans.forEach(logHandled);
    return { kind: "done", handled: events.map((e) => e.position), acked: true };
  } catch (error) {
    const f = failure as { at: number; error: unknown } | null;
    if (f === null) {
      // Lost lease (or the commit failed): nothing was applied; whoever holds it now redoes it.
      if (isInstance(error, LeaseLostError)) return { kind: "stopped", handled: [], acked: true };
      throw error;
    }
    if (f.at > 0) {
      failure = null;
      try {
        await applyAndAck(f.at);
      } catch {
        return { kind: "stopped", handled: [], acked: true };
      }
      spans.slice(0, f.at).forEach(logHandled);
    }
    return failed(events, spans, f.at, f.error, true);
  }
}
