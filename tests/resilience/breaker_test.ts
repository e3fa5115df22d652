/**
 * Circuit breaker transitions with an injected clock: every transition, both
 * trip policies, the classifier, concurrent half-open callers, hung probes
 * (one that honours its signal, over real loopback HTTP, and one that ignores
 * it), LRU eviction, and the request-path 503 and `/ready` mapping.
 */
import assert from "node:assert/strict";
import {
  type BreakerOptions,
  breakerReadiness,
  BreakerRegistry,
  BreakerTimeoutError,
  CircuitBreaker,
  CircuitOpenError,
  circuitOpenHttpError,
  defineFunction,
  HttpError,
  problemResponse,
  readEnv,
} from "../../supabase/functions/_shared/mod.ts";
import { serve } from "../_harness/server.ts";

class Clock {
  t = 1_000_000;
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

function make(options: Partial<BreakerOptions> = {}) {
  const clock = new Clock();
  const breaker = new CircuitBreaker({ key: "dep", openMs: 5_000, ...options }, {
    now: clock.now,
  });
  return { clock, breaker };
}

/** Reads state without letting TypeScript narrow it across awaits. */
const kind = (b: CircuitBreaker): string => b.state.kind;
const openUntil = (b: CircuitBreaker): number | null => {
  const s = b.state;
  return s.kind === "open" ? s.openUntil : null;
};

const ok = () => Promise.resolve("ok");
const boom = () => Promise.reject(new Error("boom"));
const settle = (p: Promise<unknown>) => p.then(() => "resolved", (e) => e);

function deferred<T = string>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

Deno.test("closed -> open after N consecutive failures; a success resets the streak", async () => {
  const { clock, breaker } = make({ policies: [{ kind: "consecutive", failures: 3 }] });
  await settle(breaker.execute(boom));
  await settle(breaker.execute(boom));
  await breaker.execute(ok); // streak broken
  await settle(breaker.execute(boom));
  await settle(breaker.execute(boom));
  assert.equal(kind(breaker), "closed");
  await settle(breaker.execute(boom));
  assert.equal(openUntil(breaker), clock.t + 5_000);
  let ran = false;
  const e1 = await settle(breaker.execute(() => ((ran = true), ok())));
  const e2 = await settle(breaker.execute(ok));
  assert.equal(ran, false);
  assert.ok(e1 instanceof CircuitOpenError);
  assert.equal(e1, e2); // one constant error, no allocation per refusal
  assert.equal((e1 as CircuitOpenError).stack?.includes("\n    at "), false);
  assert.equal(await breaker.attempt(ok), breaker.openError);
  assert.equal(breaker.tryAcquire(), -1);
  assert.equal(breaker.retryAfterMs(), 5_000);
});

Deno.test("closed -> open on failure ratio over the rolling window, respecting minimum volume", async () => {
  const { clock, breaker } = make({
    policies: [{ kind: "ratio", threshold: 0.5, windowMs: 10_000, minimumCalls: 6, buckets: 10 }],
  });
  for (let i = 0; i < 5; i++) await settle(breaker.execute(boom)); // 100% but only 5 calls
  assert.equal(kind(breaker), "closed");
  clock.advance(11_000); // those five fall out of the window
  for (let i = 0; i < 4; i++) await breaker.execute(ok);
  await settle(breaker.execute(boom));
  await settle(breaker.execute(boom)); // 2/6 = 33%
  assert.equal(kind(breaker), "closed");
  clock.advance(3_000);
  await settle(breaker.execute(boom)); // 3/7
  assert.equal(kind(breaker), "closed");
  await settle(breaker.execute(boom)); // 4/8 = 50%: trips
  assert.equal(kind(breaker), "open");
});

Deno.test("open -> half_open exactly at openUntil; probe success closes, probe failure reopens", async () => {
  const { clock, breaker } = make({ policies: [{ kind: "consecutive", failures: 1 }] });
  await settle(breaker.execute(boom));
  clock.advance(4_999);
  assert.equal(kind(breaker), "open");
  clock.advance(1);
  assert.equal(kind(breaker), "half_open");
  await settle(breaker.execute(boom)); // probe fails
  assert.equal(openUntil(breaker), clock.t + 5_000);
  clock.advance(5_000);
  assert.equal(await breaker.execute(ok), "ok"); // probe succeeds
  assert.equal(kind(breaker), "closed");
});

Deno.test("half_open admits exactly `halfOpenPermits` concurrent probes; the rest fail fast", async () => {
  const { clock, breaker } = make({
    policies: [{ kind: "consecutive", failures: 1 }],
    halfOpenPermits: 2,
  });
  await settle(breaker.execute(boom));
  clock.advance(5_000);
  const gates = [deferred(), deferred()];
  let started = 0;
  const calls = Array.from(
    { length: 5 },
    () => settle(breaker.execute(() => gates[started++]!.promise)),
  );
  assert.equal(started, 2);
  gates[0]!.resolve("a");
  assert.equal(await calls[0], "resolved");
  assert.equal(kind(breaker), "half_open"); // needs both probes
  gates[1]!.resolve("b");
  const results = await Promise.all(calls);
  assert.equal(results.filter((r) => r instanceof CircuitOpenError).length, 3);
  assert.equal(kind(breaker), "closed");
});

Deno.test("a probe that honours its signal times out over real HTTP and reopens the breaker", async () => {
  // A dependency that accepts the request and never answers.
  const hang = deferred<Response>();
  await using server = serve(() => hang.promise);
  const { clock, breaker } = make({ policies: [{ kind: "consecutive", failures: 1 }] });
  await settle(breaker.execute(boom));
  clock.advance(5_000);
  const error = await settle(
    breaker.execute((signal) => fetch(server.url, { signal }), { timeoutMs: 50 }),
  );
  assert.ok(error instanceof BreakerTimeoutError);
  assert.equal(kind(breaker), "open");
  hang.resolve(new Response("late"));
});

Deno.test("a probe that ignores its signal cannot wedge the breaker: its permit expires by the clock", async () => {
  const { clock, breaker } = make({
    policies: [{ kind: "consecutive", failures: 1 }],
    timeoutMs: 2_000,
  });
  await settle(breaker.execute(boom));
  clock.advance(5_000);
  const stuck = deferred();
  const probe = settle(breaker.execute(() => stuck.promise)); // ignores its signal
  assert.ok((await settle(breaker.execute(ok))) instanceof CircuitOpenError); // permit taken
  clock.advance(2_001); // past the probe's budget
  assert.equal(kind(breaker), "open"); // reopened without the probe settling
  clock.advance(5_000);
  assert.equal(await breaker.execute(ok), "ok"); // a fresh probe closes it
  stuck.resolve("very late");
  await probe;
  assert.equal(kind(breaker), "closed"); // the stale outcome changed nothing
});

Deno.test("classifier: 4xx errors and the caller's own abort do not count; 503 results and custom rules do", async () => {
  const { breaker } = make({ policies: [{ kind: "consecutive", failures: 2 }] });
  const notFound = () => Promise.reject(new HttpError({ status: 404, code: "not_found" }));
  for (let i = 0; i < 5; i++) await settle(breaker.execute(notFound));
  const caller = new AbortController();
  caller.abort(new Error("client went away"));
  for (let i = 0; i < 5; i++) await settle(breaker.execute(boom, { signal: caller.signal }));
  assert.equal(kind(breaker), "closed");
  const unavailable = () => Promise.resolve(new Response(null, { status: 503 }));
  const r = await breaker.execute(unavailable);
  assert.equal(r.status, 503); // the caller still gets the response...
  await breaker.execute(unavailable);
  assert.equal(kind(breaker), "open"); // ...but it counted

  const custom = make({
    policies: [{ kind: "consecutive", failures: 1 }],
    isFailure: (e) => (e as Error).message === "fatal",
  }).breaker;
  await settle(custom.execute(boom));
  assert.equal(kind(custom), "closed");
  await settle(custom.execute(() => Promise.reject(new Error("fatal"))));
  assert.equal(kind(custom), "open");
});

Deno.test("registry: bounded LRU evicts the least recently used breaker", () => {
  const clock = new Clock();
  const created: string[] = [];
  const reg = new BreakerRegistry({ maxSize: 2, onCreate: (b) => created.push(b.key) }, {
    now: clock.now,
  });
  const a = reg.get("a");
  reg.get("b");
  assert.equal(reg.get("a"), a); // same instance; "a" is now most recent
  reg.get("c"); // evicts "b"
  assert.deepEqual(reg.keys(), ["a", "c"]);
  assert.equal(reg.peek("b"), undefined);
  reg.get("b"); // recreated, evicts "a"
  assert.deepEqual(reg.keys(), ["c", "b"]);
  assert.deepEqual(created, ["a", "b", "c", "b"]);
  assert.equal(reg.size, 2);
});

Deno.test("request path: open breaker -> 503 circuit_open with Retry-After; /ready warn or fail", async () => {
  const { clock, breaker } = make({ policies: [{ kind: "consecutive", failures: 1 }] });
  await settle(breaker.execute(boom));
  clock.advance(1_200);
  const mapped = circuitOpenHttpError(await settle(breaker.execute(ok)));
  const res = problemResponse(mapped, "req-1");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "4"); // 3.8 s left, rounded up
  assert.equal((await res.json()).code, "circuit_open");
  const other = new Error("x");
  assert.equal(circuitOpenHttpError(other), other);

  const env = readEnv((k) => (k === "LOG_LEVEL" ? "warn" : undefined));
  const ready = async (critical: boolean) => {
    const fn = defineFunction({ name: "f", readiness: [breakerReadiness(breaker, { critical })] }, {
      env,
    });
    await using server = serve(fn.fetch);
    const r = await fetch(`${server.url}/f/ready`);
    return { status: r.status, body: await r.json() };
  };
  const warn = await ready(false);
  assert.equal(warn.status, 200);
  assert.equal(warn.body.status, "warn");
  assert.equal(warn.body.checks.circuits.status, "warn");
  const fail = await ready(true);
  assert.equal(fail.status, 503);
  assert.equal(fail.body.checks.circuits.status, "fail");
  clock.advance(5_000);
  await breaker.execute(ok);
  assert.equal((await ready(true)).body.status, "pass");
});
