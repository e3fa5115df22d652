/**
 * `workflows.signal` wakes a run only for an event one of its open waits waits for
 * (migration 20261124011000): another event is stored and kept, but the run's job
 * stays asleep and nothing is replayed. Parallel waits wake on either event; a run
 * sleeping beside an open wait wakes for the wait's event; waits recorded before
 * the migration (no event stored) wake on any signal, as before. All on real
 * Postgres, observed through the run's queue job and a count of replays.
 */
import assert from "node:assert/strict";
import type postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  defineWorkflow,
  signalWorkflow,
  startWorkflow,
  workflowStatus,
} from "../../supabase/functions/_shared/mod.ts";
import { drainOnce, driveUntil } from "./harness.ts";

/** The run's live job: is it due now (woken), and is it asleep with no time limit? */
async function job(sql: postgres.Sql, runId: number) {
  const [j] = await sql`select run_at <= now() as due, run_at = 'infinity' as forever,
      lease_token is not null as leased
    from queue.jobs where dedupe_key = ${"workflow:" + runId}`;
  assert.ok(j, `run ${runId} has a live job`);
  return { ...j } as { due: boolean; forever: boolean; leased: boolean };
}

async function signals(sql: postgres.Sql, runId: number) {
  const rows = await sql`select event, payload, consumed_by from workflows.signals
    where run_id = ${runId} order by id`;
  return rows.map((r) => [r.event, r.payload, r.consumed_by]);
}

const sqlState = (e: unknown) => (e as { code?: string }).code;

Deno.test("workflows signal: another event is stored but wakes nothing; the awaited one wakes", async () => {
  await using db = await freshDatabase();
  let replays = 0;
  const wf = defineWorkflow({
    name: "t.sig.one",
    input: z.object({}),
    run: async (_i, ctx) => {
      replays++;
      return await ctx.waitForEvent<{ n: number }>("wait-a", { event: "a" });
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  await driveUntil(db.sql, [wf], [id], ["waiting"]);
  assert.equal(replays, 1);
  assert.deepEqual(await job(db.sql, id), { due: false, forever: true, leased: false });
  const [step] = await db.sql`select kind, status, event from workflows.steps
    where run_id = ${id}`;
  assert.deepEqual({ ...step }, { kind: "wait", status: "waiting", event: "a" });

  // B: stored, but the job is not made runnable and a drain replays nothing.
  assert.equal(await signalWorkflow(db.sql, id, "b", { n: 2 }), true);
  assert.deepEqual(await job(db.sql, id), { due: false, forever: true, leased: false });
  const summary = await drainOnce(db.sql, [wf]);
  assert.equal(summary.claimed, 0);
  assert.equal(replays, 1, "no replay for an event nobody waits for");
  assert.equal((await workflowStatus(db.sql, id))!.status, "waiting");
  assert.deepEqual(await signals(db.sql, id), [["b", { n: 2 }, null]]);

  // A: the job is due at once, and the run completes with A's payload.
  assert.equal(await signalWorkflow(db.sql, id, "a", { n: 1 }), true);
  assert.equal((await job(db.sql, id)).due, true);
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "completed");
  assert.deepEqual(s!.output, { n: 1 });
  assert.equal(replays, 2);
  // B is still kept, unconsumed.
  assert.deepEqual(await signals(db.sql, id), [["b", { n: 2 }, null], ["a", { n: 1 }, "wait-a"]]);
});

Deno.test("workflows signal: two waits in parallel are woken by either event", async () => {
  await using db = await freshDatabase();
  const wf = defineWorkflow({
    name: "t.sig.both",
    input: z.object({}),
    run: async (_i, ctx) => {
      const [x, y] = await Promise.all([
        ctx.waitForEvent<string>("x"),
        ctx.waitForEvent<string>("wait-y", { event: "y" }),
      ]);
      return { x, y };
    },
  });
  // One run hears x first, the other y first.
  const order: [number, string, string][] = [];
  for (const [first, second] of [["x", "y"], ["y", "x"]] as const) {
    order.push([await startWorkflow(db.sql, wf, {}), first, second]);
  }
  const ids = order.map(([id]) => id);
  await driveUntil(db.sql, [wf], ids, ["waiting"]);
  for (const [id] of order) {
    const events = await db.sql`select name, event from workflows.steps
      where run_id = ${id} order by seq`;
    assert.deepEqual(events.map((e) => [e.name, e.event]), [["x", "x"], ["wait-y", "y"]]);
    assert.equal(await signalWorkflow(db.sql, id, "unrelated"), true);
    assert.equal((await job(db.sql, id)).due, false, "an unrelated event wakes neither wait");
  }
  for (const [id, first] of order) {
    assert.equal(await signalWorkflow(db.sql, id, first, `${first}!`), true);
    assert.equal((await job(db.sql, id)).due, true, `woken by ${first}`);
  }
  // Each replay takes its signal (whichever wait is first in call order).
  await drainOnce(db.sql, [wf]);
  for (const [id, first] of order) {
    const s = await workflowStatus(db.sql, id);
    assert.equal(s!.status, "waiting");
    assert.deepEqual(await signals(db.sql, id), [
      ["unrelated", {}, null],
      [first, `${first}!`, first === "x" ? "x" : "wait-y"],
    ]);
    const state = (event: string) => event === first ? "completed" : "waiting";
    assert.deepEqual(s!.steps.map((x) => [x.name, x.status]), [
      ["x", state("x")],
      ["wait-y", state("y")],
    ]);
    assert.deepEqual(await job(db.sql, id), { due: false, forever: true, leased: false });
  }
  for (const [id, , second] of order) {
    assert.equal(await signalWorkflow(db.sql, id, second, `${second}!`), true);
    assert.equal((await job(db.sql, id)).due, true, `woken by ${second}`);
  }
  const all = await driveUntil(db.sql, [wf], ids);
  for (const s of all) assert.deepEqual(s.output, { x: "x!", y: "y!" });
});

Deno.test("workflows signal: a run sleeping beside an open wait wakes for the wait's event only", async () => {
  await using db = await freshDatabase();
  let replays = 0;
  const wf = defineWorkflow({
    name: "t.sig.sleep",
    input: z.object({}),
    run: async (_i, ctx) => {
      replays++;
      const [, v] = await Promise.all([ctx.sleep("nap", 3_600_000), ctx.waitForEvent("e")]);
      return v;
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  await driveUntil(db.sql, [wf], [id], ["sleeping"]);
  assert.equal(await signalWorkflow(db.sql, id, "other"), true);
  assert.deepEqual(await job(db.sql, id), { due: false, forever: false, leased: false });
  assert.equal(await signalWorkflow(db.sql, id, "e", { ok: true }), true);
  assert.equal((await job(db.sql, id)).due, true);
  await drainOnce(db.sql, [wf]);
  assert.equal(replays, 2);
  const s = await workflowStatus(db.sql, id);
  assert.equal(s!.status, "sleeping", "the sleep is not over");
  assert.deepEqual(s!.steps.map((x) => [x.name, x.status]), [
    ["nap", "sleeping"],
    ["e", "completed"],
  ]);
  assert.deepEqual(await job(db.sql, id), { due: false, forever: false, leased: false });
});

Deno.test("workflows signal: a wait recorded without its event (before the migration) wakes on any signal", async () => {
  await using db = await freshDatabase();
  const wf = defineWorkflow({
    name: "t.sig.legacy",
    input: z.object({}),
    run: async (_i, ctx) => await ctx.waitForEvent("second", { event: "payment.confirmed" }),
  });
  const id = await startWorkflow(db.sql, wf, {});
  await driveUntil(db.sql, [wf], [id], ["waiting"]);
  // What a row written by the previous record_step looks like.
  await db.sql`update workflows.steps set event = null where run_id = ${id}`;
  assert.equal(await signalWorkflow(db.sql, id, "payment.confirmed", { p: 1 }), true);
  assert.equal((await job(db.sql, id)).due, true, "the unknown event may be this one: woken");
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.deepEqual(s!.output, { p: 1 });
});

Deno.test("workflows signal: a bad event fails the run; record_step refuses a bad p_event", async () => {
  await using db = await freshDatabase();
  const bad: [string, unknown][] = [["empty", ""], ["long", "x".repeat(201)], ["number", 42]];
  const defs = bad.map(([label, event]) =>
    defineWorkflow({
      name: `t.sig.bad.${label}`,
      input: z.object({}),
      run: async (_i, ctx) => await ctx.waitForEvent("w", { event: event as string }),
    })
  );
  const ids = await Promise.all(defs.map((d) => startWorkflow(db.sql, d, {})));
  const all = await driveUntil(db.sql, defs, ids);
  for (const [i, s] of all.entries()) {
    assert.equal(s.status, "failed", bad[i]![0]);
    assert.match(s.error!, /wait "w": event must be a string of 1\.\.200 characters/, bad[i]![0]);
  }
  // The SQL side checks before anything is written (the fence is not even looked at).
  const cases: [string, string, string | null][] = [
    ["an event on a step", "step", "e"],
    ["an empty event", "wait", ""],
    ["a long event", "wait", "x".repeat(201)],
  ];
  for (const [label, kind, event] of cases) {
    await assert.rejects(
      db.sql`select workflows.record_step(1, 1, gen_random_uuid(), 's', 0, ${kind}, 'waiting', 1,
        p_event => ${event})`,
      (e: unknown) => sqlState(e) === "22023",
      label,
    );
  }
});
