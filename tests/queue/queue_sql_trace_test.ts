/**
 * Jobs enqueued from SQL carry the trace of the request that enqueued them
 * (supabase/migrations/20261124010000_queue_fast_paths_and_sql_traces.sql): the
 * `app.traceparent` setting, else the `traceparent` header PostgREST puts in
 * `request.headers`. Real Postgres, real worker: the handler's `ctx.trace` is in
 * the same trace as the SQL caller's span.
 */
import assert from "node:assert/strict";
import type postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import { defineJob, jobRegistry, runWorker } from "../../supabase/functions/_shared/mod.ts";
import { createLogger } from "../../supabase/functions/_shared/core/log.ts";

type Sql = postgres.Sql;
const TRACE = "0af7651916cd43dd8448eb211c80319c";
const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** Runs `body` in a transaction with these transaction-local settings (as PostgREST does). */
async function withSettings<T>(
  sql: Sql,
  settings: Record<string, string>,
  body: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    for (const [k, v] of Object.entries(settings)) await tx`select set_config(${k}, ${v}, true)`;
    return await body(tx);
  }) as T;
}

const headers = (h: Record<string, string>) => ({ "request.headers": JSON.stringify(h) });

async function traceOf(sql: Sql, id: string | number) {
  const [row] = await sql<{ traceparent: string | null; tracestate: string | null }[]>`
    select traceparent, tracestate from queue.jobs where id = ${id}`;
  return row!;
}

Deno.test("queue sql trace: queue.enqueue takes the PostgREST request's traceparent", async () => {
  await using db = await freshDatabase();
  const id = await withSettings(
    db.sql,
    headers({ traceparent: PARENT, tracestate: "vendor=x", accept: "*/*" }),
    async (tx) => (await tx`select queue.enqueue('t', '{}') as id`)[0]!.id,
  );
  assert.deepEqual(await traceOf(db.sql, id), { traceparent: PARENT, tracestate: "vendor=x" });
  // Outside a request nothing is stored.
  const [plain] = await db.sql`select queue.enqueue('t', '{}') as id`;
  assert.deepEqual(await traceOf(db.sql, plain!.id), { traceparent: null, tracestate: null });
});

Deno.test("queue sql trace: app.traceparent wins over the request header", async () => {
  await using db = await freshDatabase();
  const id = await withSettings(
    db.sql,
    { ...headers({ traceparent: PARENT }), "app.traceparent": OTHER },
    async (tx) => (await tx`select queue.enqueue('t', '{}') as id`)[0]!.id,
  );
  assert.deepEqual(await traceOf(db.sql, id), { traceparent: OTHER, tracestate: null });
});

Deno.test("queue sql trace: enqueue_many fills elements without their own trace", async () => {
  await using db = await freshDatabase();
  for (const dedupe of [false, true]) {
    const key = (k: string) => (dedupe ? { dedupe_key: k } : {});
    const rows = await withSettings(
      db.sql,
      headers({ traceparent: PARENT }),
      (tx) =>
        tx<{ id: string }[]>`select id from queue.enqueue_many(${
          tx.json([
            { job_type: "a", ...key("a") },
            { job_type: "b", traceparent: OTHER, tracestate: "own=1", ...key("b") },
            { job_type: "c", ...key("c") },
          ])
        })`,
    );
    const got = await Promise.all(rows.map((r) => traceOf(db.sql, r.id)));
    assert.deepEqual(got, [
      { traceparent: PARENT, tracestate: null },
      { traceparent: OTHER, tracestate: "own=1" },
      { traceparent: PARENT, tracestate: null },
    ], `dedupe keys: ${dedupe}`);
  }
});

Deno.test("queue sql trace: the outbox trigger stores the request's trace", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.trace_outbox (id int)`;
  await db.sql`create trigger trace_outbox_enqueue after insert on public.trace_outbox
    for each row execute function queue.enqueue_row_change('trace.changed')`;
  await withSettings(db.sql, headers({ traceparent: PARENT }), async (tx) => {
    await tx`insert into public.trace_outbox values (1), (2)`;
  });
  const rows = await db.sql`select traceparent from queue.jobs where job_type = 'trace.changed'`;
  assert.deepEqual(rows.map((r) => r.traceparent), [PARENT, PARENT]);
});

Deno.test("queue sql trace: a malformed trace is ignored and never fails the write", async () => {
  await using db = await freshDatabase();
  const cases: [string, Record<string, string>][] = [
    ["uppercase hex", headers({ traceparent: PARENT.toUpperCase() })],
    ["version ff", headers({ traceparent: "ff" + PARENT.slice(2) })],
    ["zero trace id", headers({ traceparent: `00-${"0".repeat(32)}-b7ad6b7169203331-01` })],
    ["zero parent id", headers({ traceparent: `00-${TRACE}-${"0".repeat(16)}-01` })],
    ["too long", headers({ traceparent: PARENT + "-extra" })],
    ["two joined", headers({ traceparent: `${PARENT},${OTHER}` })],
    ["not a string", { "request.headers": JSON.stringify({ traceparent: 42 }) }],
    ["headers not JSON", { "request.headers": "traceparent: " + PARENT }],
    ["empty setting", { "app.traceparent": "" }],
    ["garbage setting", { "app.traceparent": "'; drop table queue.jobs; --" }],
  ];
  for (const [name, settings] of cases) {
    const id = await withSettings(
      db.sql,
      settings,
      async (tx) => (await tx`select queue.enqueue('t', '{}') as id`)[0]!.id,
    );
    assert.deepEqual(await traceOf(db.sql, id), { traceparent: null, tracestate: null }, name);
  }
  // A tracestate over 512 characters is dropped; the traceparent is kept.
  const id = await withSettings(
    db.sql,
    headers({ traceparent: PARENT, tracestate: "k=" + "v".repeat(600) }),
    async (tx) => (await tx`select queue.enqueue('t', '{}') as id`)[0]!.id,
  );
  assert.deepEqual(await traceOf(db.sql, id), { traceparent: PARENT, tracestate: null });
});

Deno.test("queue sql trace: the worker runs a SQL-enqueued job in the caller's trace", async () => {
  await using db = await freshDatabase();
  await withSettings(db.sql, headers({ traceparent: PARENT }), async (tx) => {
    await tx`select queue.enqueue('traced', '{"n": 1}')`;
  });
  const seen: { traceId: string; parentSpanId?: string }[] = [];
  const job = defineJob({
    type: "traced",
    schema: z.object({ n: z.number() }),
    handler: (_p, ctx) => {
      seen.push({ traceId: ctx.trace.traceId, parentSpanId: ctx.trace.parentSpanId });
    },
  });
  const summary = await runWorker({
    sql: db.sql,
    registry: jobRegistry([job]),
    log: createLogger("error"),
  });
  assert.equal(summary.completed, 1);
  assert.deepEqual(seen, [{ traceId: TRACE, parentSpanId: "b7ad6b7169203331" }]);
});
