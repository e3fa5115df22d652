/**
 * The `order.checkout` example saga, in the style to copy: reserve stock (a table
 * under RLS, written through an idempotent SQL function), charge the card at the
 * payment partner with the step's idempotency key, wait for the partner's
 * `payment.confirmed` signal (with a time-out), then ship. If a later step fails
 * for good, or the wait times out, or the run is cancelled, the charge is
 * refunded and the stock released, in that order.
 *
 * The partner is called with `Idempotency-Key: <run id>:charge` (refunds:
 * `<run id>:charge:refund`): a step retried after a worker died between the
 * charge and recording it must not charge twice (docs/workflows.md).
 */
import type { Sql } from "npm:postgres@3";
import { z } from "npm:zod@4";
import { sqlState } from "../../core/db.ts";
import { isInstance } from "../../core/errors.ts";
import { PermanentJobError } from "../../queue/errors.ts";
import { outboundFetch } from "../../resilience/outbound_fetch.ts";
import { defineWorkflow, type WorkflowDefinition } from "../definition.ts";
import { WorkflowCancelledError } from "../errors.ts";

/** The workflow's name. */
export const ORDER_CHECKOUT = "order.checkout";

/** Input of a checkout run. */
export const orderCheckoutInput = z.object({
  userId: z.uuid().nullable(),
  sku: z.string().min(1).max(100),
  quantity: z.number().int().min(1).max(100),
  amountCents: z.number().int().min(1).max(100_000_000),
});

/** What the saga needs from outside. */
export interface OrderCheckoutDeps {
  sql: Sql;
  /** Base URL of the payment partner: POST `/charges`, `/refunds`, `/shipments`. */
  paymentUrl: string;
  fetch?: typeof fetch;
  /** How long to wait for `payment.confirmed` (default 15 minutes). */
  confirmTimeoutMs?: number;
}

/** The name and input schema only: enough to start runs (the api does) without the deps. */
export const orderCheckoutStart = { name: ORDER_CHECKOUT, input: orderCheckoutInput };

/** The `order.checkout` workflow bound to its partner and database. */
export function orderCheckoutWorkflow(deps: OrderCheckoutDeps): WorkflowDefinition {
  const post = async (path: string, body: unknown, key: string, signal?: AbortSignal) => {
    const res = await outboundFetch(new URL(path, deps.paymentUrl).toString(), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify(body),
      signal,
    }, { fetch: deps.fetch, retries: 0, signal });
    const text = await res.text();
    // 4xx: the partner refused (a declined card); retrying cannot help. 5xx: retried.
    if (res.status >= 400 && res.status < 500) {
      throw new PermanentJobError(`${path} refused (${res.status}): ${text.slice(0, 200)}`);
    }
    if (!res.ok) throw new Error(`${path} failed (${res.status})`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const { sql } = deps;
  return defineWorkflow({
    name: ORDER_CHECKOUT,
    input: orderCheckoutInput,
    run: async ({ userId, sku, quantity, amountCents }, ctx) => {
      const reservation = await ctx.step("reserve", async () => {
        try {
          const [row] = await sql`select workflows.checkout_reserve(${ctx.runId}, ${userId}::uuid,
            ${sku}, ${quantity}) as r`;
          return row!.r as { sku: string; quantity: number };
        } catch (error) {
          if (sqlState(error) === "P0001") throw new PermanentJobError("out of stock");
          throw error;
        }
      }, {
        compensate: async () => {
          await sql`select workflows.checkout_release(${ctx.runId})`;
        },
      });
      const charge = await ctx.step("charge", async ({ idempotencyKey, signal }) => {
        const body = { amountCents, runId: ctx.runId };
        try {
          return { chargeId: String((await post("charges", body, idempotencyKey, signal)).id) };
        } catch (error) {
          // A cancel aborted a request the partner may already have acted on. Finish it
          // (the same idempotency key gets the same charge back) so the step completes
          // and its refund runs; an aborted, unrecorded charge could never be refunded.
          if (!isInstance(signal.reason, WorkflowCancelledError)) throw error;
          return { chargeId: String((await post("charges", body, idempotencyKey)).id) };
        }
      }, {
        compensate: async ({ chargeId }) => {
          await post("refunds", { chargeId }, `${ctx.runId}:charge:refund`);
        },
      });
      const confirmed = await ctx.waitForEvent<{ chargeId?: string }>("payment.confirmed", {
        timeoutMs: deps.confirmTimeoutMs ?? 15 * 60_000,
      });
      const shipment = await ctx.step("ship", async ({ idempotencyKey, signal }) => {
        const res = await post("shipments", { sku, quantity }, idempotencyKey, signal);
        return { shipmentId: String(res.id) };
      });
      ctx.log.info("order shipped", { ...shipment, chargeId: charge.chargeId });
      return { reservation, ...charge, confirmed: confirmed.chargeId ?? null, ...shipment };
    },
  });
}
