/**
 * Trace context through subscriptions: a handler run (subscription or
 * projection) continues the trace its event was appended under
 * (`metadata.traceparent`): same trace id, a span id of its own, the appender's
 * span as parent; `ctx.log` and the worker's own lines about the delivery carry
 * those ids, as job runs do for their jobs. Untraced events and hostile
 * `traceparent` values get a new trace; nothing is thrown.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import {
  appendEvents,
  createLogger,
  defineProjection,
  defineSubscription,
  type DeliveryContext,
  type EventRecord,
  runSubscriptions,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT}-01`;
const HEX16 = /^[0-9a-f]{16}$/;

/** A real logger whose lines are kept (parsed) instead of printed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", { component: "test" }, (_level, line) => {
    lines.push(JSON.parse(line));
  });
  return { log, lines };
}

type Seen = { event: EventRecord; ctx: Pick<DeliveryContext, "trace" | "attempt"> };

Deno.test("events trace: a handler run logs under its event's stored trace, with its own span id", async () => {
  await using db = await freshDatabase();
  // Traced the way a function appends: the transaction's events.traceparent setting.
  await db.sql.begin(async (tx) => {
    await tx`select set_config('events.traceparent', ${TRACEPARENT}, true)`;
    await appendEvents(tx, "order-1", [
      { type: "order.placed", data: {} },
      { type: "order.paid", data: {} },
    ]);
  });
  await appendEvents(db.sql, "order-2", [{ type: "order.placed", data: {} }]); // untraced
  const { log, lines } = capture();
  const seen: Seen[] = [];
  const sub = defineSubscription({
    name: "audit",
    handler: (event, ctx) => {
      seen.push({ event, ctx: { trace: ctx.trace, attempt: ctx.attempt } });
      ctx.log.info("auditing", { type: event.type });
    },
  });
  const s = await runSubscriptions({ sql: db.sql, subscriptions: [sub], log });
  assert.equal(s.handled, 3);

  const traced = seen.filter((x) => x.event.stream === "order-1");
  assert.equal(traced.length, 2);
  for (const { event, ctx } of traced) {
    assert.equal(event.metadata.traceparent, TRACEPARENT);
    assert.equal(ctx.trace.traceId, TRACE_ID);
    assert.equal(ctx.trace.parentSpanId, PARENT);
    assert.match(ctx.trace.spanId, HEX16);
    assert.notEqual(ctx.trace.spanId, PARENT);
    // The handler's own line and the worker's "event handled" line: the same span.
    for (const msg of ["auditing", "event handled"]) {
      const line = lines.find((l) => l.msg === msg && l.position === event.position);
      assert.ok(line, `${msg} for ${event.position}: ${JSON.stringify(lines)}`);
      assert.equal(line.traceId, TRACE_ID);
      assert.equal(line.spanId, ctx.trace.spanId);
      assert.equal(line.parentSpanId, PARENT);
      assert.equal(line.subscription, "audit");
      assert.equal(line.stream, "order-1");
      assert.equal(line.component, "test");
    }
  }
  // Each delivery is its own span.
  assert.notEqual(traced[0]!.ctx.trace.spanId, traced[1]!.ctx.trace.spanId);

  // An untraced event: a new trace, no parent, and no "event handled" line (a catch-up
  // of a million untraced events stays quiet, as untraced jobs do).
  const plain = seen.find((x) => x.event.stream === "order-2")!;
  assert.notEqual(plain.ctx.trace.traceId, TRACE_ID);
  assert.equal(plain.ctx.trace.parentSpanId, undefined);
  const plainLines = lines.filter((l) => l.position === plain.event.position);
  assert.deepEqual(plainLines.map((l) => l.msg), ["auditing"]);
  assert.equal(plainLines[0]!.traceId, plain.ctx.trace.traceId);
});

Deno.test("events trace: retries, dead letters and projections carry the delivery's span", async () => {
  await using db = await freshDatabase();
  await appendEvents(db.sql, "acct-1", [{ type: "opened", data: {} }], {});
  await db.sql`select events.append('acct-2', 'opened', '{}', ${
    db.sql.json({ traceparent: TRACEPARENT })
  })`;
  const { log, lines } = capture();
  const spans: string[] = [];
  const failing = defineSubscription({
    name: "failing",
    filter: { streamPrefix: "acct-2" },
    maxAttempts: 2,
    retryDelayMs: () => 0,
    handler: (_e, ctx) => {
      spans.push(ctx.trace.spanId);
      throw new Error(`refused on attempt ${ctx.attempt}`);
    },
  });
  const applied: string[] = [];
  const projection = defineProjection({
    name: "model",
    apply: async (tx, event, ctx) => {
      await tx`select 1`;
      applied.push(`${event.stream}:${ctx.trace.traceId}`);
      ctx.log.info("applying");
    },
  });
  for (let i = 0; i < 5; i++) {
    const s = await runSubscriptions({ sql: db.sql, subscriptions: [failing, projection], log });
    if (s.claimed === 0) break;
  }
  // Two attempts, two spans of the same trace; the warnings are under those spans.
  assert.equal(spans.length, 2);
  assert.notEqual(spans[0], spans[1]);
  const warned = lines.filter((l) => l.subscription === "failing" && l.level === "warn");
  assert.deepEqual(warned.map((l) => l.msg), ["event will be retried", "event dead-lettered"]);
  assert.deepEqual(warned.map((l) => l.spanId), spans);
  for (const w of warned) {
    assert.equal(w.traceId, TRACE_ID);
    assert.equal(w.parentSpanId, PARENT);
    assert.match(String(w.error), /refused on attempt/);
  }
  // The projection's apply runs under the trace too; "event handled" once it committed.
  assert.ok(applied.includes(`acct-2:${TRACE_ID}`), applied.join());
  const handled = lines.filter((l) => l.subscription === "model" && l.msg === "event handled");
  assert.equal(handled.length, 1);
  assert.equal(handled[0]!.traceId, TRACE_ID);
  const applying = lines.find((l) => l.msg === "applying" && l.stream === "acct-2")!;
  assert.equal(applying.spanId, handled[0]!.spanId);
});

Deno.test("events trace: hostile traceparent values start a new trace and never break delivery", async () => {
  await using db = await freshDatabase();
  // Metadata is the appender's: anything JSON can hold may sit where a traceparent goes.
  const hostile: unknown[] = [
    "",
    "garbage",
    TRACEPARENT.toUpperCase(),
    `00-${"0".repeat(32)}-${PARENT}-01`,
    `00-${TRACE_ID}-${"0".repeat(16)}-01`,
    `ff-${TRACE_ID}-${PARENT}-01`,
    `${TRACEPARENT}-extra`,
    42,
    null,
    true,
    [TRACEPARENT],
    { traceparent: TRACEPARENT },
    "x".repeat(10_000),
  ];
  const sql = db.sql as postgres.Sql;
  for (const [i, value] of hostile.entries()) {
    await sql`select events.append(${`h-${i}`}, 't', '{}', ${
      sql.json({ traceparent: value as never, tracestate: value as never })
    })`;
  }
  const traces: DeliveryContext["trace"][] = [];
  const { log, lines } = capture();
  const sub = defineSubscription({
    name: "hostile",
    handler: (_e, ctx) => {
      traces.push(ctx.trace);
      ctx.log.info("ok");
    },
  });
  const s = await runSubscriptions({ sql: db.sql, subscriptions: [sub], log });
  assert.equal(s.handled, hostile.length);
  assert.equal(s.deadLettered + s.retried, 0);
  for (const t of traces) {
    assert.equal(t.parentSpanId, undefined);
    assert.notEqual(t.traceId, TRACE_ID);
    assert.match(t.traceId, /^[0-9a-f]{32}$/);
    assert.equal(t.tracestate, undefined);
  }
  assert.equal(lines.filter((l) => l.msg === "ok").length, hostile.length);
});
