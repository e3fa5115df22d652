/**
 * One stream's share of a claimed batch: its events in version order, through a
 * subscription's handler or a projection's transaction. The caller (the worker
 * loop) writes the outcome: acks, a nack, or a release.
 */
import type { Sql } from "npm:postgres@3";
import { describeError, isInstance } from "../core/errors.ts";
import { withTimeout } from "../core/time.ts";
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

/** Runs one handler call with the consumer's timeout, capped by what the budget leaves. */
function runOne(
  def: ConsumerDefinition,
  run: StreamRun,
  fn: (ctx: DeliveryContext) => unknown,
  attempt: number,
): Promise<unknown> {
  const own = def.timeoutMs ?? CONSUMER_DEFAULTS.timeoutMs;
  const left = run.timeLeft();
  const ms = Math.max(1, Math.min(own, left));
  return withTimeout(
    (signal) => fn({ signal, attempt, subscription: def.name }),
    ms,
    () => new EventHandlerTimeoutError(ms, left < own),
    run.stop,
  );
}

/** The attempt of the i-th event of a stream's batch: only the first can have been tried before. */
const attemptOf = (events: readonly ClaimedEvent[], i: number) => i === 0 ? events[0]!.attempt : 1;

function failed(
  events: readonly ClaimedEvent[],
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
  };
}

/** Delivers a stream's events to a subscription handler, one at a time, in order. */
export async function deliverToHandler(
  def: Extract<ConsumerDefinition, { kind: "subscription" }>,
  events: readonly ClaimedEvent[],
  run: StreamRun,
): Promise<StreamOutcome> {
  for (let i = 0; i < events.length; i++) {
    const handled = events.slice(0, i).map((e) => e.position);
    if (run.stop.aborted || !(await run.holdLease())) {
      return { kind: "stopped", handled, acked: false };
    }
    try {
      await runOne(def, run, (ctx) => def.handler(events[i]!, ctx), attemptOf(events, i));
    } catch (error) {
      return failed(events, i, error, false);
    }
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
  let failure: { at: number; error: unknown } | null = null;
  const applyAndAck = (count: number) =>
    run.sql.begin(async (tx) => {
      // A read-model statement that hangs is cut by Postgres, not left holding the transaction.
      const ms = def.timeoutMs ?? CONSUMER_DEFAULTS.timeoutMs;
      await tx`select set_config('statement_timeout', ${String(Math.ceil(ms))}, true)`;
      for (let i = 0; i < count; i++) {
        try {
          await runOne(def, run, (ctx) => def.apply(tx, events[i]!, ctx), attemptOf(events, i));
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
    }
    return failed(events, f.at, f.error, true);
  }
}
