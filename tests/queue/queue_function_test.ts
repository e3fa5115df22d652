/**
 * `queue-worker` over real HTTP with real keys and Postgres, and the shipped
 * `webhook.deliver` job against real loopback servers.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import {
  assertPublicUrl,
  BreakerRegistry,
  defineFunction,
  defineJob,
  enqueueMany,
  isPrivateAddress,
  jobRegistry,
  readEnv,
  runWorker,
  webhookDeliverJob,
} from "../../supabase/functions/_shared/mod.ts";
import { queueWorkerSpec } from "../../supabase/functions/queue-worker/spec.ts";
import { jobDefinitions } from "../../supabase/functions/queue-worker/jobs.ts";
import { freshDatabase } from "../_harness/database.ts";
import { makeProject, signToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

Deno.test("queue-worker over HTTP: auth, 202 background drain, wait summary", async (t) => {
  await using db = await freshDatabase();
  const project = await makeProject({ SUPABASE_DB_URL: db.url });
  const env: Record<string, string> = { ...project.env, SUPABASE_JWT_SECRET: project.jwtSecret };
  const ran: number[] = [];
  const job = defineJob({
    type: "count",
    schema: z.object({ i: z.number() }),
    handler: ({ i }) => void ran.push(i),
  });
  const background: Promise<unknown>[] = [];
  const fn = defineFunction(queueWorkerSpec({ jobs: [job] }), {
    env: readEnv((k) => env[k]),
    waitUntil: (p) => void background.push(p),
  });
  await using server = serve(fn.fetch);
  const url = `${server.url}/functions/v1/queue-worker`;
  const post = (headers: Record<string, string>, body: unknown = {}) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  await t.step("no credentials: 401", async () => {
    const res = await post({});
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    await res.body?.cancel();
  });
  await t.step("a user JWT: 403", async () => {
    const res = await post({ authorization: `Bearer ${await signToken(project.es256)}` });
    assert.equal(res.status, 403);
    assert.equal((await res.json()).code, "forbidden_credential");
  });
  await t.step("the publishable key: 403", async () => {
    const res = await post({ apikey: project.publishable });
    assert.equal(res.status, 403);
    await res.body?.cancel();
  });
  await t.step("cron key, default: 202 and a background drain", async () => {
    await enqueueMany(db.sql, [1, 2, 3].map((i) => ({ job, payload: { i } })));
    const res = await post({ apikey: project.cronSecret });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { data: { accepted: true } });
    await Promise.all(background);
    assert.deepEqual(ran.sort(), [1, 2, 3]);
  });
  await t.step("legacy service_role JWT with wait: 200 summary", async () => {
    await enqueueMany(db.sql, [4, 5].map((i) => ({ job, payload: { i } })));
    await db.sql`select queue.enqueue('no.such.type')`;
    const token = await signToken({ secret: project.jwtSecret }, {
      role: "service_role",
      aud: null,
      sub: null,
    });
    const res = await post({ authorization: `Bearer ${token}` }, { wait: true });
    assert.equal(res.status, 200);
    const { data } = await res.json();
    assert.deepEqual(
      [data.claimed, data.completed, data.retried, data.deadLettered],
      [3, 2, 0, 1],
    );
    assert.equal(typeof data.durationMs, "number");
  });
  await t.step("bad body: 422", async () => {
    const res = await post({ apikey: project.secret }, { wait: "yes", budgetMs: 5 });
    assert.equal(res.status, 422);
    const body = await res.json();
    assert.deepEqual(body.errors.map((e: { pointer: string }) => e.pointer).sort(), [
      "/budgetMs",
      "/wait",
    ]);
  });
});

Deno.test("queue-worker entry point serves health without credentials", async () => {
  const mod = await import("../../supabase/functions/queue-worker/index.ts");
  const res = await mod.default.fetch(new Request("http://x/functions/v1/queue-worker/health"));
  assert.equal(res.status, 200);
  assert.equal((await res.json()).status, "pass");
  assert.ok(jobDefinitions().some((d) => d.type === "webhook.deliver"));
});

Deno.test("ssrf: private, loopback, link-local and mapped addresses are refused", async () => {
  for (
    const ip of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "::1",
      "[::1]",
      "fe80::1",
      "fc00::1",
      "fd12::1",
      "::ffff:127.0.0.1",
      "::",
      "not-an-ip",
    ]
  ) {
    assert.ok(isPrivateAddress(ip), ip);
  }
  for (const ip of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111"]) {
    assert.ok(!isPrivateAddress(ip), ip);
  }
  const resolve = (host: string) =>
    Promise.resolve(host === "evil.example" ? ["10.0.0.5"] : ["93.184.215.14"]);
  await assert.rejects(assertPublicUrl(new URL("http://evil.example/x"), { resolve }), /private/);
  await assertPublicUrl(new URL("https://fine.example/x"), { resolve });
  await assert.rejects(assertPublicUrl(new URL("http://localhost:1/")), /local name/);
  await assert.rejects(assertPublicUrl(new URL("ftp://fine.example/")), /http/);
  await assertPublicUrl(new URL("http://127.0.0.1:9/"), { allowHosts: ["127.0.0.1"] });
});

Deno.test("webhook.deliver: 2xx done, 5xx/429/timeout retried, 4xx and SSRF dead", async () => {
  await using db = await freshDatabase();
  const hits: string[] = [];
  // /hang answers only when the test ends: its timeout is certain, however slow the machine.
  const release = Promise.withResolvers<void>();
  await using target = serve(async (req) => {
    const path = new URL(req.url).pathname;
    hits.push(`${req.method} ${path} ${await req.text()}`);
    if (path === "/hang") await release.promise;
    const status = Number(path.slice(1)) || 200;
    return new Response(null, { status });
  });
  using _release = { [Symbol.dispose]: () => release.resolve() }; // before the server stops
  // The default timeout: a short one would also cut off the answering targets on a slow machine.
  const webhook = webhookDeliverJob({ allowHosts: ["127.0.0.1"] });
  const calls = ["/200", "/204", "/500", "/429", "/404"];
  await enqueueMany(db.sql, [
    ...calls.map((p) => ({
      job: webhook,
      payload: { url: `${target.url}${p}`, body: { p } },
      options: { maxAttempts: 1 },
    })),
    {
      job: webhook,
      payload: { url: "http://169.254.169.254/latest/meta-data" },
      options: { maxAttempts: 1 },
    },
  ]);
  const s = await runWorker({ sql: db.sql, registry: jobRegistry([webhook]) });
  assert.equal(s.completed, 2);
  const hanging = webhookDeliverJob({ allowHosts: ["127.0.0.1"], timeoutMs: 200 });
  await enqueueMany(db.sql, [{
    job: hanging,
    payload: { url: `${target.url}/hang`, body: { p: "/hang" } },
    options: { maxAttempts: 1 },
  }]);
  await runWorker({ sql: db.sql, registry: jobRegistry([hanging]) });
  const dead = await db.sql`select payload->>'url' as url, reason from queue.dead_letters`;
  const reason = (suffix: string) => dead.find((d) => d.url.endsWith(suffix))?.reason;
  assert.equal(reason("/500"), "attempts_exhausted");
  assert.equal(reason("/429"), "attempts_exhausted");
  assert.equal(reason("/hang"), "attempts_exhausted");
  assert.equal(reason("/404"), "http_404");
  assert.equal(reason("meta-data"), "ssrf_blocked");
  assert.ok(hits.includes('POST /200 {"p":"/200"}'));
  assert.ok(!hits.some((h) => h.includes("meta-data")));
  // Without the allowlist, loopback is refused before any request.
  const before = hits.length;
  const strict = webhookDeliverJob();
  await enqueueMany(db.sql, [{ job: strict, payload: { url: `${target.url}/200` } }]);
  await runWorker({ sql: db.sql, registry: jobRegistry([strict]) });
  assert.equal(hits.length, before);
});

Deno.test("webhook.deliver: the per-host breaker stops calling a failing host", async () => {
  await using db = await freshDatabase();
  let hits = 0;
  await using target = serve(() => {
    hits++;
    return new Response(null, { status: 503 });
  });
  const breakers = new BreakerRegistry({
    defaults: { policies: [{ kind: "consecutive", failures: 3 }], openMs: 60_000 },
  });
  const webhook = webhookDeliverJob({
    allowHosts: ["127.0.0.1"],
    breakerFor: (host) => breakers.get(host),
  });
  await enqueueMany(
    db.sql,
    Array.from({ length: 8 }, () => ({
      job: webhook,
      payload: { url: `${target.url}/x` },
      options: { maxAttempts: 1 },
    })),
  );
  const s = await runWorker({ sql: db.sql, registry: jobRegistry([webhook]), concurrency: 1 });
  assert.equal(hits, 3, "calls stop once the breaker opens");
  // Refused jobs were not tried: deferred until the breaker may half-open, attempt unspent.
  assert.equal(s.deferred, 5);
  const rows = await db.sql`select attempts, run_at > now() + interval '50 s' as later
    from queue.jobs`;
  assert.equal(rows.length, 5);
  assert.ok(rows.every((r) => r.attempts === 0 && r.later));
});
