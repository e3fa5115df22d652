/**
 * Traces end to end (docs/queue.md "Traces", README "Traces"): W3C `traceparent`
 * parsed strictly (input classes as fast-check properties), every log line of a
 * request under its trace id, `outboundFetch` and `webhook.deliver` propagating
 * it, and a job enqueued by the request running and logging under the same trace
 * with its own span, over real HTTP on loopback and real Postgres.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import { z } from "npm:zod@4";
import {
  action,
  continueTrace,
  createLogger,
  defineFunction,
  defineJob,
  enqueue,
  jobRegistry,
  otlpExporter,
  outboundFetch,
  parseTraceparent,
  parseTracestate,
  readEnv,
  runWorker,
  traceparentOf,
  webhookDeliverJob,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";

/** Only ever fails the test (a broken export must not hang it). */
async function withDeadline<T>(what: string, p: Promise<T>, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fail = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
  });
  return await Promise.race([p, fail]).finally(() => clearTimeout(timer));
}

const hexChar = fc.constantFrom(..."0123456789abcdef");
const hex = (n: number) => fc.string({ unit: hexChar, minLength: n, maxLength: n });
const nonZeroHex = (n: number) => hex(n).filter((s) => /[1-9a-f]/.test(s));
const validV00 = fc.tuple(nonZeroHex(32), nonZeroHex(16), hex(2)).map(([t, p, f]) =>
  `00-${t}-${p}-${f}`
);
/** The W3C grammar as a regular expression: the oracle the parser must agree with. */
const ORACLE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/s;

function oracle(header: string) {
  const m = ORACLE.exec(header);
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m;
  if (version === "ff" || /^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return null;
  if (version === "00" && rest !== undefined) return null;
  return { version, traceId, parentId, flags };
}

Deno.test("traceparent: valid version 00 headers parse to their fields", () => {
  fc.assert(fc.property(validV00, (h) => {
    const p = parseTraceparent(h);
    assert.deepEqual(p, {
      version: "00",
      traceId: h.slice(3, 35),
      parentId: h.slice(36, 52),
      flags: h.slice(53),
    });
  }));
});

Deno.test("traceparent: invalid classes start a new trace", () => {
  const cases: [string, fc.Arbitrary<string>][] = [
    ["uppercase hex", validV00.filter((h) => /[a-f]/.test(h)).map((h) => h.toUpperCase())],
    [
      "all-zero trace id",
      fc.tuple(nonZeroHex(16), hex(2)).map(([p, f]) => `00-${"0".repeat(32)}-${p}-${f}`),
    ],
    [
      "all-zero parent id",
      fc.tuple(nonZeroHex(32), hex(2)).map(([t, f]) => `00-${t}-${"0".repeat(16)}-${f}`),
    ],
    ["version ff", validV00.map((h) => "ff" + h.slice(2))],
    ["version 00 with more fields", fc.tuple(validV00, fc.string()).map(([h, s]) => `${h}-${s}`)],
    [
      "a future version followed by no dash",
      fc.tuple(validV00, hex(1)).map(([h, c]) => `01${h.slice(2)}${c}`),
    ],
    [
      "truncated",
      fc.tuple(validV00, fc.integer({ min: 0, max: 54 })).map(([h, n]) => h.slice(0, n)),
    ],
    [
      "a wrong separator",
      fc.tuple(validV00, fc.constantFrom(2, 35, 52), fc.constantFrom("_", " ", "x"))
        .map(([h, i, c]) => h.slice(0, i) + c + h.slice(i + 1)),
    ],
    ["two headers joined", fc.tuple(validV00, validV00).map(([a, b]) => `${a}, ${b}`)],
  ];
  for (const [name, arb] of cases) {
    fc.assert(
      fc.property(arb, (h) => {
        assert.equal(parseTraceparent(h), null, `${name}: ${h}`);
        const t = continueTrace(h);
        assert.equal(t.parentSpanId, undefined, name);
        assert.match(t.traceId, /^[0-9a-f]{32}$/);
        assert.notEqual(t.traceId, h.slice(3, 35).toLowerCase(), `${name}: a new trace id`);
      }),
    );
  }
});

Deno.test("traceparent: future versions keep the first four fields and only the sampled flag", () => {
  const future = fc.tuple(
    hex(2).filter((v) => v !== "00" && v !== "ff"),
    validV00,
    fc.option(fc.string(), { nil: undefined }),
  ).map(([v, h, rest]) => `${v}${h.slice(2)}${rest === undefined ? "" : `-${rest}`}`);
  fc.assert(fc.property(future, (h) => {
    const p = parseTraceparent(h);
    assert.ok(p);
    assert.equal(p.traceId, h.slice(3, 35));
    const t = continueTrace(h);
    assert.equal(t.flags, parseInt(h.slice(53, 55), 16) & 1 ? "01" : "00");
    assert.equal(traceparentOf(t).slice(0, 3), "00-", "we always send version 00");
  }));
});

Deno.test("traceparent: any string agrees with the W3C grammar and never throws", () => {
  const near = fc.tuple(validV00, fc.integer({ min: 0, max: 54 }), fc.string({ maxLength: 3 }))
    .map(([h, i, s]) => h.slice(0, i) + s + h.slice(i + s.length));
  fc.assert(
    fc.property(fc.oneof(fc.string(), near, validV00), (h) => {
      assert.deepEqual(parseTraceparent(h), oracle(h));
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("traceparent: a continued trace keeps the trace id and gets a new span", () => {
  fc.assert(fc.property(validV00, (h) => {
    const t = continueTrace(h, "vendor=abc");
    assert.equal(t.traceId, h.slice(3, 35));
    assert.equal(t.parentSpanId, h.slice(36, 52));
    assert.notEqual(t.spanId, t.parentSpanId);
    assert.equal(t.flags, h.slice(53));
    assert.equal(t.tracestate, "vendor=abc");
    assert.equal(traceparentOf(t), `00-${t.traceId}-${t.spanId}-${t.flags}`);
  }));
});

Deno.test("tracestate: valid lists pass on, malformed or too long ones are dropped", () => {
  const table: [string | null, string | undefined][] = [
    [null, undefined],
    ["", undefined],
    ["congo=t61rcWkgMzE", "congo=t61rcWkgMzE"],
    ["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
    ["tenant@system=v", "tenant@system=v"],
    ["a=1,,b=2", "a=1,b=2"],
    ["Upper=1", undefined],
    ["a=1,a=2", undefined],
    ["noequals", undefined],
    ["a=has,comma", undefined],
    ["a=trailing ", "a=trailing"], // whitespace around members is allowed (OWS)
    ["a=tab\there", undefined],
    [Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(","), undefined],
    [`k=${"v".repeat(600)}`, undefined],
  ];
  for (const [input, expected] of table) {
    assert.equal(parseTracestate(input), expected, JSON.stringify(input));
  }
});

Deno.test("a request's trace: every log line, outbound calls, its jobs and their webhooks", async (t) => {
  await using db = await freshDatabase();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", {}, (_l, line) => void lines.push(JSON.parse(line)));
  const outbound: Headers[] = [];
  await using target = serve((req) => {
    outbound.push(req.headers);
    return new Response("ok");
  });
  const step = defineJob({
    type: "traced.step",
    schema: z.object({}),
    handler: (_p, ctx) => ctx.log.info("step ran", { note: "inside the job" }),
  });
  const webhook = webhookDeliverJob({ allowHosts: ["127.0.0.1"] });
  const fn = defineFunction({
    name: "traced",
    auth: "none",
    actions: {
      go: action({
        input: z.object({}),
        handler: async (_p, ctx) => {
          ctx.log.info("handler says hello");
          const res = await outboundFetch(`${target.url}/dep`, {}, { trace: ctx.trace });
          await res.body?.cancel();
          const sql = await ctx.db.sql();
          await enqueue(sql, step, {}, { trace: ctx.trace });
          await enqueue(sql, webhook, { url: `${target.url}/hook`, body: { hi: 1 } }, {
            trace: ctx.trace,
          });
          return { ok: true };
        },
      }),
    },
  }, {
    // The access line is opt-in (ACCESS_LOG); this test follows the trace into it.
    env: readEnv((k) =>
      ({ SUPABASE_DB_URL: db.url, ACCESS_LOG: "on" } as Record<string, string>)[k]
    ),
    log,
  });
  await using server = serve(fn.fetch);
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const call = async (headers: Record<string, string>) => {
    const before = lines.length;
    const res = await fetch(`${server.url}/functions/v1/traced`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ action: "go", payload: {} }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return { requestId: res.headers.get("x-request-id")!, lines: lines.slice(before) };
  };

  await t.step("an incoming traceparent is honoured end to end", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parent = "00f067aa0ba902b7";
    const got = await call({ traceparent: `00-${traceId}-${parent}-01`, tracestate: "congo=t61" });
    assert.ok(got.lines.length >= 2, "the handler's line and the access log");
    const spanIds = new Set(got.lines.map((l) => l.spanId));
    for (const line of got.lines) {
      assert.equal(line.traceId, traceId, JSON.stringify(line));
      assert.equal(line.parentSpanId, parent);
    }
    assert.equal(spanIds.size, 1, "one span per request");
    const [requestSpan] = [...spanIds] as string[];
    assert.notEqual(requestSpan, parent);
    const dep = outbound.at(-1)!;
    assert.equal(dep.get("traceparent"), `00-${traceId}-${requestSpan}-01`);
    assert.equal(dep.get("tracestate"), "congo=t61");
    const rows = await db.sql<{ job_type: string; traceparent: string; tracestate: string }[]>`
      select job_type, traceparent, tracestate from queue.jobs order by id`;
    assert.deepEqual(rows.map((r) => r.traceparent), [
      `00-${traceId}-${requestSpan}-01`,
      `00-${traceId}-${requestSpan}-01`,
    ]);
    assert.equal(rows[0]!.tracestate, "congo=t61");

    // The worker runs them (its own log): each run logs under the request's trace.
    const workerLines: Record<string, unknown>[] = [];
    const summary = await runWorker({
      sql: db.sql,
      registry: jobRegistry([step, webhook]),
      log: createLogger("info", {}, (_l, line) => void workerLines.push(JSON.parse(line))),
    });
    assert.equal(summary.completed, 2);
    const stepLine = workerLines.find((l) => l.msg === "step ran")!;
    assert.equal(stepLine.traceId, traceId);
    assert.equal(stepLine.parentSpanId, requestSpan, "the job's span is a child of the request's");
    assert.notEqual(stepLine.spanId, requestSpan);
    const done = workerLines.filter((l) => l.msg === "job done");
    assert.equal(done.length, 2, "every traced run says it ran");
    for (const l of done) assert.equal(l.traceId, traceId);
    const hook = outbound.at(-1)!;
    const hookSpan = done.find((l) => l.jobType === "webhook.deliver")!.spanId;
    assert.equal(hook.get("traceparent"), `00-${traceId}-${hookSpan}-01`, "webhook propagates");
    assert.equal(hook.get("tracestate"), "congo=t61");
  });

  await t.step(
    "no traceparent, or an invalid one: a new trace, the same on every line",
    async () => {
      const cases: Record<string, string>[] = [
        {},
        { traceparent: "00-" + "0".repeat(32) + "-00f067aa0ba902b7-01" },
      ];
      for (const headers of cases) {
        await db.sql`delete from queue.jobs`;
        const got = await call(headers);
        const ids = new Set(got.lines.map((l) => l.traceId));
        assert.equal(ids.size, 1, JSON.stringify(got.lines));
        const [traceId] = [...ids] as string[];
        assert.match(traceId!, /^[0-9a-f]{32}$/);
        assert.notEqual(traceId, "0".repeat(32));
        assert.ok(got.lines.every((l) => l.parentSpanId === undefined));
        assert.equal(outbound.at(-1)!.get("traceparent")!.slice(3, 35), traceId);
        assert.equal(outbound.at(-1)!.get("tracestate"), null);
      }
    },
  );
});

Deno.test("enqueue_many refuses a malformed traceparent, naming the element", async () => {
  await using db = await freshDatabase();
  await assert.rejects(
    db.sql`select * from queue.enqueue_many(${
      db.sql.json([{ job_type: "x" }, { job_type: "x", traceparent: "00-zz" }])
    })`,
    /element 2 has a malformed traceparent/,
  );
  const [row] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(row!.n, 0, "nothing was written");
});

Deno.test("OTLP export: request and job spans carry the ids of the log lines", async () => {
  await using db = await freshDatabase();
  const received: { resourceSpans: unknown[] }[] = [];
  const arrived: PromiseWithResolvers<void>[] = [Promise.withResolvers(), Promise.withResolvers()];
  await using collector = serve(async (req) => {
    assert.equal(new URL(req.url).pathname, "/v1/traces");
    received.push(await req.json());
    arrived[received.length - 1]?.resolve();
    return Response.json({});
  });
  const job = defineJob({ type: "exported", schema: z.object({}), handler: () => {} });
  const background: Promise<unknown>[] = [];
  const lines: Record<string, unknown>[] = [];
  const env = {
    SUPABASE_DB_URL: db.url,
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    ACCESS_LOG: "on", // the test reads the request span id off the access line
  };
  const fn = defineFunction({
    name: "exported",
    auth: "none",
    actions: {
      go: action({
        input: z.object({}),
        handler: async (_p, ctx) => {
          await enqueue(await ctx.db.sql(), job, {}, { trace: ctx.trace });
          return null;
        },
      }),
    },
  }, {
    env: readEnv((k) => (env as Record<string, string>)[k]),
    log: createLogger("info", {}, (_l, line) => void lines.push(JSON.parse(line))),
    waitUntil: (p) => void background.push(p),
  });
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const res = await fn.fetch(
    new Request("http://127.0.0.1/functions/v1/exported", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ action: "go", payload: {} }),
    }),
  );
  assert.equal(res.status, 200);
  await res.body?.cancel();
  await withDeadline("the scheduled flush", Promise.all(background));
  await withDeadline("the request's span", arrived[0]!.promise);
  const summary = await runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    log: createLogger("error"),
    spans: otlpExporter(collector.url, "worker", createLogger("error")),
  });
  assert.equal(summary.completed, 1);
  await withDeadline("the job's span", arrived[1]!.promise);
  type Span = { traceId: string; spanId: string; parentSpanId?: string; name: string };
  const spans = received.flatMap((body) =>
    (body.resourceSpans as { scopeSpans: { spans: Span[] }[] }[]).flatMap((r) =>
      r.scopeSpans.flatMap((s) => s.spans)
    )
  );
  const request = spans.find((s) => s.name === "POST /")!;
  const run = spans.find((s) => s.name === "job exported")!;
  const logged = lines.find((l) => l.msg === "request")!;
  assert.equal(request.traceId, traceId);
  assert.equal(request.spanId, logged.spanId, "the request span is the one the logs name");
  assert.equal(request.parentSpanId, "00f067aa0ba902b7");
  assert.equal(run.traceId, traceId);
  assert.equal(run.parentSpanId, request.spanId, "the job's span is a child of the request's");
});
