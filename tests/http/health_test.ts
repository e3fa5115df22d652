/** /health and /ready on every function: no credentials, health+json, no internals leaked. */
import assert from "node:assert/strict";
import { defineFunction, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { apiSpec } from "../../supabase/functions/api/index.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { makeProject } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

const get = (url: string) => fetch(url, { headers: { origin: "https://app.example.com" } });

Deno.test("health and readiness", async (t) => {
  await using db = await freshDatabase();
  const project = await makeProject({ SUPABASE_DB_URL: db.url });
  const fn = defineFunction(apiSpec, { env: readEnv((k) => project.env[k]) });
  await using server = serve(fn.fetch);
  try {
    await steps(t, server.url);
  } finally {
    await fn.close();
  }
});

async function steps(t: Deno.TestContext, url: string) {
  const server = { url };
  await t.step("GET /health: 200 pass without credentials, both path forms", async () => {
    for (const path of ["/functions/v1/api/health", "/api/health"]) {
      const res = await get(server.url + path);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/health+json");
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      assert.deepEqual(await res.json(), { status: "pass", checks: {} });
    }
  });

  await t.step("GET /ready: 200 with a live Postgres check", async () => {
    const res = await get(server.url + "/api/ready");
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.status, "pass");
    assert.equal(body.checks.postgres.status, "pass");
    assert.equal(typeof body.checks.postgres.durationMs, "number");
  });

  await t.step("POST /ready is not a readiness probe", async () => {
    const res = await fetch(server.url + "/api/ready", { method: "POST", body: "{}" });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });
}

Deno.test("readiness fails (503, no internals) when Postgres is unreachable", async () => {
  const deadUrl = `postgresql://postgres:secret-password@127.0.0.1:${freePort()}/postgres`;
  const project = await makeProject({ SUPABASE_DB_URL: deadUrl });
  const fn = defineFunction(apiSpec, { env: readEnv((k) => project.env[k]) });
  await using server = serve(fn.fetch);
  const res = await get(server.url + "/api/ready");
  assert.equal(res.status, 503);
  assert.ok(res.headers.get("retry-after"));
  const text = await res.text();
  const body = JSON.parse(text);
  assert.equal(body.status, "fail");
  assert.equal(body.checks.postgres.status, "fail");
  assert.doesNotMatch(text, /secret-password|ECONNREFUSED|127\.0\.0\.1/);
  // Liveness does no I/O: still pass.
  const live = await get(server.url + "/api/health");
  assert.equal(live.status, 200);
  await live.body?.cancel();
  await fn.close();
});
