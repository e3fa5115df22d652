/**
 * How the OTLP exporter handles a failing or unreachable collector. The
 * end-to-end path (request and job spans reaching a loopback collector) is in
 * traces_test.ts.
 */
import assert from "node:assert/strict";
import { type FinishedSpan, otlpExporter } from "../../supabase/functions/_shared/core/otlp.ts";
import { serve } from "../_harness/server.ts";

const trace = {
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
  parentSpanId: "b7ad6b7169203331",
  flags: "01",
  tracestate: undefined,
};

Deno.test("otlp: a collector that fails or is unreachable is logged once per flush, never thrown", async () => {
  const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
  const log = {
    warn: (msg: string, fields: Record<string, unknown> = {}) => warnings.push({ msg, fields }),
  };
  let hits = 0;
  await using collector = serve(async (req) => {
    hits++;
    await req.body?.cancel();
    return new Response("no", { status: 400 }); // not retryable: one POST
  });
  const span: FinishedSpan = { trace, name: "s", kind: "internal", startMs: 1, endMs: 2 };
  const failing = otlpExporter(collector.url, "svc", log);
  failing.record(span);
  failing.record(span);
  await failing.flush();
  assert.equal(hits, 1, "one POST for the buffered spans");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.msg, "OTLP export failed");
  assert.equal(warnings[0]!.fields.spans, 2);
  assert.match(String(JSON.stringify(warnings[0]!.fields.error)), /400|Bad Request|failed/i);

  // Nothing listens on the closed server's port: a network error, also only logged.
  const url = collector.url;
  await collector.close();
  const unreachable = otlpExporter(url, "svc", log);
  unreachable.record(span);
  await unreachable.flush();
  assert.equal(warnings.length, 2);
  await unreachable.flush(); // an empty buffer sends nothing and logs nothing
  assert.equal(warnings.length, 2);
});
