/**
 * One delivery's span: the trace stored with the event (`metadata.traceparent`,
 * set by whoever appended it) continued with a span id of its own, as a job run
 * continues its job's trace. Handlers get it as `ctx.trace` and `ctx.log`; the
 * worker's own lines about the delivery carry the same ids. Made on first use:
 * a delivery that neither logs nor calls out pays nothing.
 */
import type { Logger } from "../core/log.ts";
import { continueTrace, type TraceContext, traceFields } from "../core/trace.ts";
import type { ClaimedEvent } from "./sql.ts";

const text = (v: unknown) => typeof v === "string" ? v : undefined;

/** A delivery's span and logger. */
export class DeliveryTrace {
  #trace: TraceContext | undefined;
  #log: Logger | undefined;

  constructor(
    readonly event: ClaimedEvent,
    readonly subscription: string,
    readonly attempt: number,
    readonly base: Logger,
  ) {}

  /** True when the event carries a valid trace context (traced deliveries log that they ran). */
  get traced(): boolean {
    return text(this.event.metadata?.traceparent) !== undefined &&
      this.trace.parentSpanId !== undefined;
  }

  get trace(): TraceContext {
    const m = this.event.metadata ?? {};
    return this.#trace ??= continueTrace(text(m.traceparent), text(m.tracestate));
  }

  /** The worker's logger with subscription, stream, position, attempt and the span's ids. */
  get log(): Logger {
    return this.#log ??= this.base.child({
      subscription: this.subscription,
      stream: this.event.stream,
      position: this.event.position,
      eventType: this.event.type,
      attempt: this.attempt,
      ...traceFields(this.trace),
    });
  }
}
