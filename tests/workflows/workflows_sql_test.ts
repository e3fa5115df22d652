/**
 * The workflows SQL API and its TypeScript wrappers on real Postgres: start
 * (idempotent, validated, usable from a trigger in the same transaction),
 * status, signals (before the wait, unknown run, an event nobody waits for, after
 * the time-out), sleeps, and the grants.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  defineWorkflow,
  signalWorkflow,
  startWorkflow,
  WaitTimeoutError,
  WorkflowInputError,
  workflowStatus,
} from "../../supabase/functions/_shared/mod.ts";
import { drainOnce, driveUntil } from "./harness.ts";

const sqlState = (e: unknown) => (e as { code?: string }).code;

Deno.test("workflows sql: start validates, is idempotent by key, and rolls back with its transaction", async () => {
  await using db = await freshDatabase();
  const bad: [string, string | null, string][] = [
    ["bad name!", "{}", "22023"],
    ["", "{}", "22023"],
    ["ok.name", null, "22023"],
    ["ok.name", "[]", "22023"],
    ["ok.name", '"text"', "22023"],
  ];
  for (const [name, input, code] of bad) {
    await assert.rejects(
      db.sql`select workflows.start(${name}, ${input}::jsonb)`,
      (e: unknown) => sqlState(e) === code,
      `${name} ${input}`,
    );
  }
  await assert.rejects(
    db.sql`select workflows.start('ok.name', '{}', '')`,
    (e: unknown) => sqlState(e) === "22023",
  );
  const [{ a }] = await db.sql`select workflows.start('ok.name', '{"x":1}', 'key-1') as a`;
  const [{ b }] = await db.sql`select workflows.start('ok.name', '{"x":2}', 'key-1') as b`;
  const [{ c }] = await db.sql`select workflows.start('ok.name', '{"x":1}', 'key-2') as c`;
  assert.equal(a, b);
  assert.notEqual(a, c);
  const [{ n }] = await db
    .sql`select count(*)::int as n from queue.jobs where job_type = 'workflow.run'`;
  assert.equal(n, 2, "one job per run");
  await db.sql.begin(async (tx) => {
    await tx`select workflows.start('ok.name', '{}', 'rolled-back')`;
    throw new Error("roll back");
  }).catch(() => {});
  const [{ m }] = await db.sql`select count(*)::int as m from workflows.runs
    where idempotency_key = 'rolled-back'`;
  assert.equal(m, 0);
  assert.equal((await db.sql`select workflows.status(999999) as s`)[0]!.s, null);
});

Deno.test("workflows sql: a row change starts a run in the same transaction (trigger)", async () => {
  await using db = await freshDatabase();
  // A test table and trigger, as an app would write them in its own migration.
  await db.sql.unsafe(`
    create table public.wf_orders (id bigint primary key, sku text not null);
    create function public.wf_orders_start() returns trigger
    language plpgsql security definer set search_path = '' as $$
    begin
      perform workflows.start('t.trigger', jsonb_build_object('orderId', new.id, 'sku', new.sku),
        'order:' || new.id);
      return new;
    end $$;
    create trigger wf_orders_start after insert on public.wf_orders
      for each row execute function public.wf_orders_start();`);
  const wf = defineWorkflow({
    name: "t.trigger",
    input: z.object({ orderId: z.number(), sku: z.string() }),
    run: async ({ orderId, sku }, ctx) => await ctx.step("echo", () => `${orderId}:${sku}`),
  });
  await db.sql`insert into public.wf_orders values (7, 'tee')`;
  await assert.rejects(db.sql`insert into public.wf_orders values (7, 'dup')`);
  const runs = await db.sql`select id from workflows.runs`;
  assert.equal(runs.length, 1, "the failed insert started nothing");
  const [s] = await driveUntil(db.sql, [wf], [Number(runs[0]!.id)]);
  assert.equal(s!.output, "7:tee");
});

Deno.test("workflows ts: startWorkflow checks input with the schema (422), nothing is written", async () => {
  await using db = await freshDatabase();
  const wf = defineWorkflow({
    name: "t.schema",
    input: z.object({ sku: z.string().min(1), quantity: z.number().int().positive() }),
    run: () => Promise.resolve(),
  });
  for (const input of [{}, { sku: "", quantity: 1 }, { sku: "a", quantity: 0 }, null, []]) {
    await assert.rejects(startWorkflow(db.sql, wf, input), (e: unknown) => {
      assert.ok(e instanceof WorkflowInputError);
      assert.equal(e.status, 422);
      assert.ok(e.errors.length > 0);
      return true;
    });
  }
  const [{ n }] = await db.sql`select count(*)::int as n from workflows.runs`;
  assert.equal(n, 0);
  const a = await startWorkflow(db.sql, wf, { sku: "a", quantity: 1 }, { idempotencyKey: "k" });
  const b = await startWorkflow(db.sql, wf, { sku: "a", quantity: 1 }, { idempotencyKey: "k" });
  assert.equal(a, b);
});

Deno.test("workflows: a signal sent before the wait is kept; unknown runs and bad events are refused", async () => {
  await using db = await freshDatabase();
  const wf = defineWorkflow({
    name: "t.signal",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("first", () => 1);
      const p = await ctx.waitForEvent<{ amount: number }>("payment.confirmed", {
        timeoutMs: 600_000,
      });
      const q = await ctx.waitForEvent<{ n: number }>("second", { event: "payment.confirmed" });
      return { p, q };
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  // Both signals arrive before the run has even started.
  assert.equal(await signalWorkflow(db.sql, id, "payment.confirmed", { amount: 5 }), true);
  assert.equal(await signalWorkflow(db.sql, id, "payment.confirmed", { n: 2 }), true);
  assert.equal(await signalWorkflow(db.sql, 987654, "payment.confirmed"), false);
  for (const event of ["", "x".repeat(201)]) {
    await assert.rejects(
      signalWorkflow(db.sql, id, event),
      (e: unknown) => sqlState(e) === "22023",
    );
  }
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "completed");
  assert.deepEqual(s!.output, { p: { amount: 5 }, q: { n: 2 } });
  assert.equal(await signalWorkflow(db.sql, id, "payment.confirmed"), false, "finished run");
});

Deno.test("workflows: a waiting run wakes on its signal; a wait times out; a late signal is refused", async () => {
  await using db = await freshDatabase();
  const wf = defineWorkflow({
    name: "t.wait",
    input: z.object({ timeoutMs: z.number() }),
    run: async ({ timeoutMs }, ctx) => {
      try {
        return await ctx.waitForEvent("go", { timeoutMs });
      } catch (e) {
        if (e instanceof WaitTimeoutError) return "timed out";
        throw e;
      }
    },
  });
  const waiting = await startWorkflow(db.sql, wf, { timeoutMs: 600_000 });
  const timesOut = await startWorkflow(db.sql, wf, { timeoutMs: 1 });
  await driveUntil(db.sql, [wf], [waiting], ["waiting"]);
  assert.equal((await workflowStatus(db.sql, waiting))!.steps[0]!.status, "waiting");
  // An event the run does not wait for is kept, but does not feed the wait, nor wake
  // the run (workflows_signal_test.ts checks that no replay happens).
  assert.equal(await signalWorkflow(db.sql, waiting, "not.awaited", { wrong: true }), true);
  await drainOnce(db.sql, [wf]);
  assert.equal((await workflowStatus(db.sql, waiting))!.status, "waiting");
  assert.equal(await signalWorkflow(db.sql, waiting, "go", { ok: true }), true);
  const [a, b] = await driveUntil(db.sql, [wf], [waiting, timesOut]);
  assert.deepEqual(a!.output, { ok: true });
  const kept = await db.sql`select event, consumed_by from workflows.signals
    where run_id = ${waiting} order by id`;
  assert.deepEqual(kept.map((k) => [k.event, k.consumed_by]), [["not.awaited", null], [
    "go",
    "go",
  ]]);
  assert.equal(b!.output, "timed out");
  assert.equal(b!.steps[0]!.status, "timed_out");
  assert.equal(await signalWorkflow(db.sql, timesOut, "go"), false, "after the time-out");
});

Deno.test("workflows: ctx.sleep suspends the run and resumes it after the time", async () => {
  await using db = await freshDatabase();
  let before = 0;
  const wf = defineWorkflow({
    name: "t.sleep",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("before", () => before++);
      await ctx.sleep("nap", 30);
      return await ctx.step("after", () => "woke");
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.output, "woke");
  assert.equal(before, 1);
  assert.deepEqual(s!.steps.map((x) => [x.name, x.kind, x.status]), [
    ["before", "step", "completed"],
    ["nap", "sleep", "completed"],
    ["after", "step", "completed"],
  ]);
});

Deno.test("workflows sql: only service_role may call the API", async () => {
  await using db = await freshDatabase();
  for (const role of ["anon", "authenticated"]) {
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx`select workflows.start('x', '{}')`;
      }),
      (e: unknown) => sqlState(e) === "42501",
      role,
    );
  }
  await db.sql.begin(async (tx) => {
    await tx.unsafe(`set local role service_role`);
    await tx`select workflows.start('x', '{}')`;
    await tx`select workflows.cancel_requested(array[1]::bigint[])`;
  });
  // Every function of the schema (the worker side too): service_role only.
  const grants = await db.sql`
    select p.oid::regprocedure::text as fn,
      has_function_privilege('anon', p.oid, 'execute') as anon,
      has_function_privilege('authenticated', p.oid, 'execute') as authed,
      has_function_privilege('service_role', p.oid, 'execute') as service
    from pg_proc p where p.pronamespace = 'workflows'::regnamespace
      and left(p.proname, 1) <> '_'`;
  assert.ok(
    grants.some((g) => g.fn.startsWith("workflows.cancel_requested(")),
    JSON.stringify(grants.map((g) => g.fn)),
  );
  for (const g of grants) {
    assert.deepEqual([g.anon, g.authed, g.service], [false, false, true], g.fn);
  }
});
