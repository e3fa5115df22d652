/**
 * Whatever a handler throws, rejects with or returns becomes a recorded outcome
 * with a readable, storable error: the describer and runJob over the class of
 * JavaScript values (fast-check) and a table of hand-made nasty ones, then end
 * to end on real Postgres, where a batch of such handlers must not take the
 * worker down nor keep any job leased.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import { z } from "npm:zod@4";
import { freshDatabase } from "../_harness/database.ts";
import {
  createLogger,
  defineJob,
  describeError,
  enqueueMany,
  ERROR_TEXT_LIMIT,
  jobRegistry,
  PermanentJobError,
  runJob,
  runWorker,
} from "../../supabase/functions/_shared/mod.ts";

/** Values that break naive describers (String(), JSON.stringify, instanceof, getters). */
function nastyValues(): [string, unknown][] {
  const circular: Record<string, unknown> = Object.create(null);
  circular.self = circular;
  circular.n = 10n;
  const throwingMessage = new (class extends Error {
    override get message(): string {
      throw new Error("message getter");
    }
  })();
  const throwingName = new Error("fine message");
  Object.defineProperty(throwingName, "name", {
    get() {
      throw new Error("name getter");
    },
  });
  const trapAll = new Proxy({}, {
    get: () => {
      throw new Error("get trap");
    },
    getPrototypeOf: () => {
      throw new Error("getPrototypeOf trap");
    },
    has: () => {
      throw new Error("has trap");
    },
    ownKeys: () => {
      throw new Error("ownKeys trap");
    },
    getOwnPropertyDescriptor: () => {
      throw new Error("gOPD trap");
    },
  });
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const fnProxy = new Proxy(function named() {}, {
    get: () => {
      throw new Error("fn get trap");
    },
  });
  return [
    ["undefined", undefined],
    ["null", null],
    ["empty string", ""],
    ["NUL string", "bad\0byte"],
    ["lone surrogate", "half \ud800 pair"],
    ["huge string", "x".repeat(100_000)],
    ["symbol", Symbol("sym")],
    ["anonymous symbol", Symbol()],
    ["function", function thrower() {}],
    ["arrow", () => {}],
    ["bigint", 123n],
    ["NaN", NaN],
    ["toJSON returns undefined", { toJSON: () => undefined }],
    ["toJSON throws", {
      toJSON() {
        throw new Error("toJSON");
      },
    }],
    ["toString and valueOf throw", {
      toJSON: () => undefined,
      toString() {
        throw new Error("toString");
      },
      valueOf() {
        throw new Error("valueOf");
      },
    }],
    ["circular null-prototype object with a BigInt", circular],
    ["null-prototype empty object", Object.create(null)],
    ["Error with throwing message getter", throwingMessage],
    ["Error with throwing name getter", throwingName],
    ["Proxy throwing on every trap", trapAll],
    ["revoked Proxy", revoked.proxy],
    ["function Proxy throwing on get", fnProxy],
    ["message is a symbol", { message: Symbol("m") }],
    ["Error with NUL in message", new Error("nul\0inside")],
    ["AggregateError", new AggregateError([1n, Symbol()], "many")],
    [
      "PermanentJobError with throwing reason",
      Object.defineProperty(
        new PermanentJobError("perm"),
        "reason",
        {
          get() {
            throw new Error("reason getter");
          },
        },
      ),
    ],
    ["thenable whose then throws", {
      get then() {
        throw new Error("then getter");
      },
    }],
  ];
}

/** Postgres refuses NUL in text/jsonb; UTF-8 cannot carry lone surrogates. */
function assertStorable(text: string, label: string) {
  assert.equal(typeof text, "string", label);
  assert.ok(text.length > 0, `${label}: empty`);
  assert.ok(text.length <= 2 * ERROR_TEXT_LIMIT + 1, `${label}: ${text.length} chars`);
  assert.ok(!text.includes("\0"), `${label}: NUL`);
  assert.ok(text.isWellFormed(), `${label}: lone surrogate`);
}

Deno.test("describeError: any value gives a bounded, storable text and never throws", () => {
  fc.assert(
    fc.property(
      fc.anything({ withBigInt: true, withNullPrototype: true, withBoxedValues: true }),
      (v) => {
        assertStorable(describeError(v), fc.stringify(v));
      },
    ),
    { numRuns: 2_000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (name, message) => {
      const e = new Error(message);
      e.name = name;
      const text = describeError(e);
      assertStorable(text, JSON.stringify([name, message]));
      if (message && !message.includes("\0") && message.isWellFormed() && message.length < 1_000) {
        assert.ok(text.includes(message), "the message is kept");
      }
    }),
  );
  for (const [label, value] of nastyValues()) assertStorable(describeError(value), label);
});

Deno.test("describeError: says what was thrown", () => {
  const cases: [unknown, RegExp][] = [
    [undefined, /^non-error thrown: undefined$/],
    [null, /^non-error thrown: null$/],
    [Symbol("sym"), /Symbol\(sym\)/],
    [123n, /123/],
    [function thrower() {}, /function thrower/],
    [{ code: 7, n: 2n }, /"code":7.*"2n"/],
    [new TypeError("boom"), /^TypeError: boom$/],
    ["plain text", /^plain text$/],
    ["bad\0byte", /^bad\\0byte$/],
    ["x".repeat(5_000), /^x{2000}…$/],
  ];
  for (const [value, pattern] of cases) assert.match(describeError(value), pattern);
  const [, circular] = nastyValues().find(([l]) => l.startsWith("circular"))!;
  assert.match(describeError(circular), /\[Circular\]/);
  const [, proxy] = nastyValues().find(([l]) => l.startsWith("Proxy"))!;
  assert.match(describeError(proxy), /^non-error thrown: /);
});

Deno.test("runJob: any thrown, rejected or returned value ends in an outcome", async () => {
  const job = (type: string) => ({
    id: 1,
    job_type: type,
    payload: {},
    attempts: 1,
    max_attempts: 5,
    lease_token: crypto.randomUUID(),
    lease_until: "",
  });
  const options = { extendLease: () => Promise.resolve(true) };
  let value: unknown;
  const registry = jobRegistry([
    defineJob({
      type: "throws",
      schema: z.object({}),
      handler: () => {
        throw value;
      },
    }),
    defineJob({ type: "rejects", schema: z.object({}), handler: () => Promise.reject(value) }),
    defineJob({ type: "returns", schema: z.object({}), handler: () => value }),
  ]);
  const check = async (v: unknown, label: string) => {
    value = v;
    for (const type of ["throws", "rejects"]) {
      const outcome = await runJob(job(type), registry, options);
      assert.ok(outcome.kind === "retry" || outcome.kind === "dead", `${type} ${label}`);
      assertStorable(outcome.error, `${type} ${label}`);
    }
    const returned = await runJob(job("returns"), registry, options);
    assert.ok(["done", "retry"].includes(returned.kind), `returns ${label}`);
  };
  for (const [label, v] of nastyValues()) await check(v, label);
  await fc.assert(
    fc.asyncProperty(
      fc.anything({ withBigInt: true, withNullPrototype: true }),
      (v) => check(v, fc.stringify(v)),
    ),
    { numRuns: 300 },
  );
});

Deno.test("worker: handlers throwing nasty values are retried and dead-lettered, the batch completes", async () => {
  await using db = await freshDatabase();
  const nasty = nastyValues();
  const ok: number[] = [];
  const lines: string[] = [];
  const registry = jobRegistry([
    defineJob({
      type: "nasty",
      schema: z.object({ i: z.number(), reject: z.boolean() }),
      maxAttempts: 2,
      backoff: { baseMs: 0, maxMs: 0 },
      handler: ({ i, reject }) => {
        const value = nasty[i]![1];
        if (reject) return Promise.reject(value);
        throw value;
      },
    }),
    defineJob({
      type: "fine",
      schema: z.object({ i: z.number() }),
      handler: ({ i }) => void ok.push(i),
    }),
  ]);
  const [nastyDef, fineDef] = [registry.get("nasty")!, registry.get("fine")!];
  // Interleaved, so every claimed batch mixes good and bad jobs.
  await enqueueMany(
    db.sql,
    nasty.flatMap((_, i) => [
      { job: nastyDef, payload: { i, reject: false } },
      { job: fineDef, payload: { i } },
      { job: nastyDef, payload: { i, reject: true } },
    ]),
  );
  const summary = await runWorker({
    sql: db.sql,
    registry,
    concurrency: 4,
    batchSize: 8,
    log: createLogger("info", {}, (_l, line) => lines.push(line)),
  });
  const n = nasty.length;
  assert.equal(ok.length, n, "every good job of the mixed batches completed");
  assert.equal(summary.completed, n);
  assert.equal(summary.deadLettered, 2 * n);
  // The PermanentJobError (with a throwing `reason` getter) is dead at once, as non_retryable.
  assert.equal(summary.retried, 2 * (n - 1));
  const [{ live }] = await db.sql`select count(*)::int as live from queue.jobs`;
  assert.equal(live, 0, "no job is left leased or waiting");
  const dead = await db.sql<
    { payload: { i: number }; last_error: string; errors: unknown[]; reason: string }[]
  >`
    select payload, last_error, errors, reason from queue.dead_letters`;
  assert.equal(dead.length, 2 * n);
  for (const d of dead) {
    const label = nasty[d.payload.i]![0];
    const permanent = label.startsWith("PermanentJobError");
    assert.equal(d.reason, permanent ? "non_retryable" : "attempts_exhausted", label);
    assert.equal(d.errors.length, permanent ? 1 : 2, label);
    assert.ok(d.last_error.length > 0, label);
  }
  const deadLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "job dead-lettered");
  assert.equal(deadLines.length, 2 * n);
  assert.ok(deadLines.every((l) => typeof l.error === "string" && l.error.length > 0));
});
