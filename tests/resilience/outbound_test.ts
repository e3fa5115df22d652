/**
 * outboundFetch against real loopback servers: retries with jittered backoff,
 * Retry-After, idempotency, timeouts, the breaker, and caller aborts. Waits are
 * recorded instead of slept, so the file stays fast.
 */
import assert from "node:assert/strict";
import {
  BreakerTimeoutError,
  CircuitBreaker,
  CircuitOpenError,
  outboundFetch,
  parseRetryAfter,
} from "../../supabase/functions/_shared/mod.ts";
import { serve } from "../_harness/server.ts";

/** A dependency answering from a script of responses (the last one repeats). */
function scripted(script: (() => Response | Promise<Response>)[]) {
  const seen: string[] = [];
  const server = serve(async (req) => {
    seen.push(req.method + " " + (await req.text()));
    return await script[Math.min(seen.length - 1, script.length - 1)]!();
  });
  return { server, seen };
}

const status = (s: number, headers: Record<string, string> = {}) => () =>
  new Response(`status ${s}`, { status: s, headers });

function recorder() {
  const waits: number[] = [];
  return { waits, sleep: (ms: number) => (waits.push(ms), Promise.resolve()), random: () => 0.5 };
}

Deno.test("GET: 503, 502, then 200 -> retried with capped, jittered exponential backoff", async () => {
  const { server, seen } = scripted([status(503), status(502), status(200)]);
  await using _ = server;
  const r = recorder();
  const res = await outboundFetch(server.url, {}, { ...r, backoff: { baseMs: 100, maxMs: 150 } });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "status 200");
  assert.equal(seen.length, 3);
  assert.deepEqual(r.waits, [50, 75]); // 0.5 * min(150, 100), 0.5 * min(150, 200)
});

Deno.test("Retry-After is honoured, and one longer than maxRetryAfterMs is returned as is", async () => {
  const { server, seen } = scripted([status(429, { "retry-after": "2" }), status(200)]);
  await using _ = server;
  const r = recorder();
  assert.equal((await outboundFetch(server.url, {}, r)).status, 200);
  await Promise.resolve();
  assert.deepEqual(r.waits, [2000]);

  const slow = scripted([status(503, { "retry-after": "120" })]);
  await using __ = slow.server;
  const res = await outboundFetch(slow.server.url, {}, recorder());
  assert.equal(res.status, 503);
  await res.body?.cancel();
  assert.equal(slow.seen.length, 1);
  assert.equal(seen.length, 2);
  assert.equal(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString())! > 3_000, true);
  assert.equal(parseRetryAfter("soon"), null);
});

Deno.test("POST is not retried by default; retryNonIdempotent replays the body", async () => {
  const { server, seen } = scripted([status(503), status(201)]);
  await using _ = server;
  const once = await outboundFetch(server.url, { method: "POST", body: "x" }, recorder());
  assert.equal(once.status, 503);
  await once.body?.cancel();
  assert.deepEqual(seen, ["POST x"]);
  const twice = await outboundFetch(server.url, { method: "POST", body: "y" }, {
    ...recorder(),
    retryNonIdempotent: true,
  });
  assert.equal(twice.status, 201);
  await twice.body?.cancel();
  assert.deepEqual(seen, ["POST x", "POST y"]);
});

Deno.test("a hanging dependency times out per attempt; timeouts are retried, then thrown", async () => {
  const hang = Promise.withResolvers<void>();
  const { server, seen } = scripted([() => hang.promise.then(() => new Response("late"))]);
  await using _ = server;
  const r = recorder();
  await assert.rejects(
    outboundFetch(server.url, {}, { ...r, timeoutMs: 30, retries: 1 }),
    BreakerTimeoutError,
  );
  assert.equal(seen.length, 2);
  assert.equal(r.waits.length, 1);
  hang.resolve();
});

Deno.test("with a breaker: failures trip it, then calls fail fast without reaching the dependency", async () => {
  const { server, seen } = scripted([status(500)]);
  await using _ = server;
  const breaker = new CircuitBreaker({
    key: "dep",
    policies: [{ kind: "consecutive", failures: 3 }],
  });
  const res = await outboundFetch(server.url, {}, { ...recorder(), breaker, retries: 2 });
  assert.equal(res.status, 500); // the last answer is returned...
  await res.body?.cancel();
  assert.equal(breaker.state.kind, "open"); // ...and all three attempts counted
  await assert.rejects(outboundFetch(server.url, {}, { ...recorder(), breaker }), CircuitOpenError);
  assert.equal(seen.length, 3);
});

Deno.test("the caller's abort stops at once and is not retried", async () => {
  const hang = Promise.withResolvers<void>();
  const { server, seen } = scripted([() => hang.promise.then(() => new Response("late"))]);
  await using _ = server;
  const caller = new AbortController();
  const r = recorder();
  const pending = outboundFetch(server.url, {}, { ...r, signal: caller.signal, retries: 3 });
  while (seen.length === 0) await new Promise((res) => setTimeout(res, 5));
  caller.abort(new Error("client went away"));
  await assert.rejects(pending, /client went away/);
  assert.equal(seen.length, 1);
  assert.equal(r.waits.length, 0);
  hang.resolve();
});
