/**
 * The worker's adaptive claim size: it grows while the queue is deep and
 * handlers are fast, falls back when the queue is shallow, and never holds more
 * than a quarter second of work at the rate jobs end (nextBatchSize), and a real
 * drain at the shipped defaults claims in growing batches. The clock is injected,
 * so nothing here depends on how fast this machine is.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  BATCH_WORK_MS,
  defineJob,
  enqueueMany,
  jobRegistry,
  MAX_BATCH_SIZE,
  nextBatchSize,
  runWorker,
  SPLIT_CLAIM_AT,
} from "../../supabase/functions/_shared/mod.ts";

const bounds = { min: 20, max: 500 };

Deno.test("queue batch: nextBatchSize grows when deep and fast, resets when shallow", () => {
  const fast = { ended: 1000, elapsedMs: 10 }; // 100 jobs/ms
  const cases: [string, number, { got: number; want: number }, typeof fast, number][] = [
    ["deep, fast: doubles", 20, { got: 20, want: 20 }, fast, 40],
    ["deep, fast: stops at the ceiling", 400, { got: 400, want: 400 }, fast, 500],
    ["shallow: back to the floor", 320, { got: 7, want: 320 }, fast, 20],
    ["empty: back to the floor", 40, { got: 0, want: 40 }, fast, 20],
    ["no job ended yet: unchanged", 40, { got: 40, want: 40 }, { ended: 0, elapsedMs: 5 }, 40],
    // 10 jobs/s: a quarter second of work is 2-3 jobs, below the floor.
    ["deep, slow handlers: the floor", 160, { got: 160, want: 160 }, {
      ended: 10,
      elapsedMs: 1000,
    }, 20],
    // 400 jobs/s: a quarter second is 100 jobs, whatever doubling would give.
    ["deep, moderate: capped by the rate", 80, { got: 80, want: 80 }, {
      ended: 400,
      elapsedMs: 1000,
    }, 100],
  ];
  for (const [name, current, claim, recent, expected] of cases) {
    assert.equal(nextBatchSize(current, claim, recent, bounds), expected, name);
  }
  assert.equal(BATCH_WORK_MS, 250);
  assert.equal(MAX_BATCH_SIZE, 500);
});

Deno.test("queue batch: a drain at the defaults claims in growing batches up to the ceiling", async () => {
  await using db = await freshDatabase();
  const job = defineJob({ type: "noop", schema: z.object({ i: z.number() }), handler: () => {} });
  const n = 3000;
  await enqueueMany(db.sql, Array.from({ length: n }, (_, i) => ({ job, payload: { i } })));
  // Every claim's size (the 4th value of ack_and_claim's statement), from the real statements;
  // the statements sent in one synchronous step (a claim split in two halves) are one claim.
  const wants: number[] = [];
  const parts: number[] = [];
  let step: number[] | null = null;
  const sql = new Proxy(db.sql, {
    apply(target, self, args: unknown[]) {
      const strings = args[0] as readonly string[];
      if (Array.isArray(strings) && strings.join("").includes("queue.ack_and_claim")) {
        if (step === null) {
          const current: number[] = step = [];
          queueMicrotask(() => {
            wants.push(current.reduce((a, b) => a + b, 0));
            parts.push(current.length);
            step = null;
          });
        }
        step.push(args[4] as number);
      }
      return Reflect.apply(target, self, args);
    },
  });
  // A clock that moves 1 µs per reading: handlers look fast however busy the machine is.
  let t = 0;
  const summary = await runWorker({
    sql,
    registry: jobRegistry([job]),
    now: () => (t += 0.001),
  });
  assert.equal(summary.completed, n);
  assert.equal(wants[0], 20, "starts at 2 x concurrency");
  assert.ok(wants.every((w) => w <= MAX_BATCH_SIZE), `never above the ceiling: ${wants}`);
  assert.ok(wants.includes(MAX_BATCH_SIZE), `grows to the ceiling: ${wants}`);
  for (let i = 1; i < wants.length - 1; i++) {
    assert.ok(wants[i]! >= wants[i - 1]!, `grows while deep: ${wants}`);
  }
  assert.ok(wants.length < n / 20 / 4, `fewer round trips than fixed batches: ${wants.length}`);
  // Deep and big: a claim of SPLIT_CLAIM_AT or more goes out as two concurrent halves.
  assert.ok(parts.includes(2), `split while deep: ${parts}`);
  assert.ok(
    wants.every((w, i) => parts[i] === 1 || w >= SPLIT_CLAIM_AT),
    `only big claims split: ${wants} ${parts}`,
  );
});
