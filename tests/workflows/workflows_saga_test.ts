/**
 * Sagas on real Postgres: compensation in reverse completion order with
 * retries, compensation_failed and its repair with workflows.retry, and
 * cancellation (a running step's signal aborts; a step that ignores it finishes
 * and is compensated too; a waiting run).
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  cancelWorkflow,
  defineWorkflow,
  PermanentJobError,
  retryWorkflow,
  startWorkflow,
  WorkflowCancelledError,
  workflowStatus,
} from "../../supabase/functions/_shared/mod.ts";
import { drainOnce, driveUntil, gate } from "./harness.ts";

const fast = { baseMs: 0, maxMs: 0 };

Deno.test("sagas: a step failing for good undoes completed steps in reverse completion order", async () => {
  await using db = await freshDatabase();
  const log: string[] = [];
  const wf = defineWorkflow({
    name: "t.saga",
    input: z.object({}),
    run: async (_i, ctx) => {
      const undo = (name: string) => (r: unknown) =>
        void log.push(`undo ${name} ${JSON.stringify(r)}`);
      await ctx.step("reserve", () => "r1", { compensate: undo("reserve") });
      await ctx.step("note", () => "no undo needed");
      await ctx.step("a", () => "A", { compensate: undo("a") });
      await ctx.step("b", () => "B", { compensate: undo("b") });
      await ctx.step("ship", () => {
        throw new PermanentJobError("no courier");
      });
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "compensated");
  assert.match(s!.error!, /no courier/);
  assert.deepEqual(log, ['undo b "B"', 'undo a "A"', 'undo reserve "r1"']);
  const steps = Object.fromEntries(s!.steps.map((x) => [x.name, x]));
  assert.equal((steps.reserve as { compensation?: string }).compensation, "compensated");
  assert.equal((steps.note as { compensation?: string }).compensation, undefined);
  assert.equal(steps.ship!.status, "failed");
});

Deno.test("sagas: compensations retry; one failing for good ends compensation_failed, retry repairs it", async () => {
  await using db = await freshDatabase();
  const log: string[] = [];
  let refundWorks = false;
  let releaseTries = 0;
  const wf = defineWorkflow({
    name: "t.saga.repair",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("reserve", () => "r", {
        backoff: fast,
        maxAttempts: 3,
        compensate: () => {
          // Fails twice, then succeeds: within its 3 attempts.
          if (++releaseTries < 3) throw new Error(`release ${releaseTries}`);
          log.push("released");
        },
      });
      await ctx.step("charge", () => "c", {
        backoff: fast,
        maxAttempts: 2,
        compensate: () => {
          if (!refundWorks) throw new Error("refund service down");
          log.push("refunded");
        },
      });
      await ctx.step("ship", () => {
        throw new PermanentJobError("no courier");
      });
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "compensation_failed");
  assert.match(s!.error!, /compensation of step "charge" failed: Error: refund service down/);
  const charge = s!.steps.find((x) => x.name === "charge") as Record<string, unknown>;
  assert.equal(charge.compensation, "compensation_failed");
  assert.equal(charge.compensationAttempts, 2);
  assert.deepEqual(log, [], "the earlier step is not undone past a failed compensation");

  refundWorks = true;
  assert.equal(await retryWorkflow(db.sql, id), true);
  const [t] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(t!.status, "compensated");
  assert.deepEqual(log, ["refunded", "released"]);
  assert.equal(releaseTries, 3);
  assert.equal(await retryWorkflow(db.sql, id), false, "a compensated run is not retried");
});

Deno.test("sagas: cancel from SQL aborts the running step's signal; completed steps are compensated once", async () => {
  await using db = await freshDatabase();
  const started = gate();
  const undone: string[] = [];
  const reasons: unknown[] = [];
  let laterRan = false;
  const wf = defineWorkflow({
    name: "t.cancel.abort",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("reserve", () => "r", { compensate: (r) => void undone.push(`release ${r}`) });
      await ctx.step("charge", () => "c", { compensate: (c) => void undone.push(`refund ${c}`) });
      await ctx.step("ship", ({ signal }) =>
        new Promise((_, reject) => {
          // Waits on nothing but its signal: only the cancel can end it (its timeout is
          // longer than the invocation's, so a missed abort would fail the test).
          signal.addEventListener("abort", () => {
            reasons.push(signal.reason);
            reject(signal.reason);
          }, { once: true });
          started.open();
        }), { compensate: () => void undone.push("unship"), timeoutMs: 600_000, maxAttempts: 5 });
      await ctx.step("notify", () => (laterRan = true));
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  const worker = drainOnce(db.sql, [wf], { cancelPollMs: 10 });
  await started.opened;
  const [{ ok }] = await db.sql`select workflows.cancel(${id}) as ok`;
  assert.equal(ok, true);
  await worker;
  assert.equal(reasons.length, 1, "the step saw its signal abort once");
  assert.ok(reasons[0] instanceof WorkflowCancelledError);
  assert.equal((reasons[0] as WorkflowCancelledError).runId, id);
  // Drained again: nothing is left to do, and nothing runs twice.
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "cancelled");
  assert.equal(laterRan, false);
  assert.deepEqual(
    undone,
    ["refund c", "release r"],
    "each completed step undone once, newest first",
  );
  const rows = await db.sql`
    select name, status, attempts, error, compensation_status, compensation_attempts
    from workflows.steps where run_id = ${id} order by seq`;
  assert.deepEqual(
    rows.map((r) => [r.name, r.status, r.compensation_status, r.compensation_attempts]),
    [
      ["reserve", "completed", "compensated", 1],
      ["charge", "completed", "compensated", 1],
      ["ship", "failed", null, 0],
    ],
  );
  assert.match(rows[2]!.error, /cancelled while the step ran: WorkflowCancelledError/);
  assert.equal(rows[2]!.attempts, 1, "the aborted attempt is not retried");
  const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs`;
  assert.equal(n, 0);
});

Deno.test("sagas: a step that ignores its abort finishes; its result is compensated too", async () => {
  await using db = await freshDatabase();
  const started = gate();
  const finish = gate();
  const aborted = gate();
  const log: string[] = [];
  let laterRan = false;
  const wf = defineWorkflow({
    name: "t.cancel",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("reserve", () => "r", { compensate: () => void log.push("released") });
      await ctx.step("charge", async ({ signal }) => {
        signal.addEventListener("abort", () => aborted.open(), { once: true });
        started.open();
        await finish.opened;
        return "c";
      }, { compensate: () => void log.push("refunded") });
      await ctx.step("ship", () => (laterRan = true));
    },
  });
  const id = await startWorkflow(db.sql, wf, {});
  const worker = drainOnce(db.sql, [wf], { cancelPollMs: 10 });
  await started.opened;
  assert.equal(await cancelWorkflow(db.sql, id), true);
  assert.equal(await cancelWorkflow(db.sql, id), false, "a second cancel is refused");
  // The step finishes only once its signal has aborted (and ignores the abort).
  await aborted.opened;
  finish.open();
  await worker;
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "cancelled");
  assert.equal(laterRan, false);
  assert.deepEqual(log, ["refunded", "released"]);
  assert.equal(await cancelWorkflow(db.sql, id), false, "a finished run cannot be cancelled");
});

Deno.test("sagas: cancel a waiting run; a run that failed without compensations can be retried", async () => {
  await using db = await freshDatabase();
  const log: string[] = [];
  const waits = defineWorkflow({
    name: "t.cancel.wait",
    input: z.object({}),
    run: async (_i, ctx) => {
      await ctx.step("reserve", () => "r", { compensate: () => void log.push("released") });
      await ctx.waitForEvent("payment.confirmed");
    },
  });
  const id = await startWorkflow(db.sql, waits, {});
  await driveUntil(db.sql, [waits], [id], ["waiting"]);
  assert.equal(await cancelWorkflow(db.sql, id), true);
  const [s] = await driveUntil(db.sql, [waits], [id]);
  assert.equal(s!.status, "cancelled");
  assert.deepEqual(log, ["released"]);

  let works = false;
  const plain = defineWorkflow({
    name: "t.retry.failed",
    input: z.object({}),
    run: async (_i, ctx) =>
      await ctx.step("x", () => {
        if (!works) throw new Error("not yet");
        return "ok";
      }, { maxAttempts: 1 }),
  });
  const p = await startWorkflow(db.sql, plain, {});
  const [f] = await driveUntil(db.sql, [plain], [p]);
  assert.equal(f!.status, "failed");
  works = true;
  assert.equal(await retryWorkflow(db.sql, p), true);
  const [g] = await driveUntil(db.sql, [plain], [p]);
  assert.equal(g!.status, "completed");
  assert.equal(g!.output, "ok");
  assert.equal((await workflowStatus(db.sql, p))!.steps[0]!.attempts, 1);
});
