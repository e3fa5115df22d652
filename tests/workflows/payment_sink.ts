/**
 * A loopback payment partner for the checkout saga: POST /charges, /refunds and
 * /shipments, each deduplicated by its Idempotency-Key header (as real partners
 * do). It counts effects per key, can decline or fail on request, and confirms a
 * charge by signalling the run (as a partner's webhook would).
 */
import type postgres from "npm:postgres@3";
import { signalWorkflow } from "../../supabase/functions/_shared/mod.ts";
import { serve } from "../_harness/server.ts";

/** Decides how the sink answers one request (by path and key); 200 by default. */
export type SinkPlan = (path: string, key: string, body: Record<string, unknown>) => number;

/** Starts the sink; `confirm` decides whether a charge gets its payment.confirmed signal. */
export function paymentSink(
  sql: postgres.Sql,
  options: { plan?: SinkPlan; confirm?: (runId: number) => boolean } = {},
) {
  /** Effects by path, then key: how many requests each key sent (deduplicated: one effect). */
  const effects = {
    charges: new Map<string, number>(),
    refunds: new Map<string, number>(),
    shipments: new Map<string, number>(),
  };
  const server = serve(async (req) => {
    const path = new URL(req.url).pathname.slice(1) as keyof typeof effects;
    const key = req.headers.get("idempotency-key") ?? "";
    const body = await req.json() as Record<string, unknown>;
    const map = effects[path];
    if (!map || !key) return new Response("bad request", { status: 400 });
    const status = options.plan?.(path, key, body) ?? 200;
    if (status !== 200) return new Response(`planned ${status}`, { status });
    const first = !map.has(key);
    map.set(key, (map.get(key) ?? 0) + 1);
    if (path === "charges" && first) {
      const runId = Number(key.split(":")[0]);
      if (options.confirm?.(runId) ?? true) {
        await signalWorkflow(sql, runId, "payment.confirmed", { chargeId: `ch_${key}` });
      }
    }
    return Response.json({ id: `${path}_${key}` });
  });
  return { url: server.url + "/", effects, server };
}
