/** Unit tests of the small _shared modules, with real Requests and Responses. */
import assert from "node:assert/strict";
import {
  ALLOWED_HEADERS,
  corsPolicy,
  createLogger,
  defineFunction,
  EnvError,
  HttpError,
  problemResponse,
  readBodyBytes,
  readEnv,
  readJsonBody,
} from "../../supabase/functions/_shared/mod.ts";
import { corsHeaders as supabaseCors } from "npm:@supabase/supabase-js@2/cors";

const status = async (p: Promise<unknown>) => {
  try {
    await p;
    return 200;
  } catch (e) {
    assert.ok(e instanceof HttpError, String(e));
    return e.status;
  }
};

Deno.test("body: a lying Content-Length cannot get past the limit", async () => {
  const big = new Uint8Array(2048).fill(32);
  const lying = new Request("http://x/", {
    method: "POST",
    body: new Blob([big]).stream(),
    headers: { "content-length": "10", "content-type": "application/json" },
  });
  assert.equal(await status(readBodyBytes(lying, 1024)), 413);
  const honest = new Request("http://x/", {
    method: "POST",
    body: "{}",
    headers: { "content-length": "999999" },
  });
  assert.equal(await status(readBodyBytes(honest, 1024)), 413, "declared size is checked first");
  const fine = new Request("http://x/", { method: "POST", body: '{"a":1}' });
  assert.equal(new TextDecoder().decode(await readBodyBytes(fine, 1024)), '{"a":1}');
});

Deno.test("body: content types, empty body, invalid UTF-8", async () => {
  const mk = (body: BodyInit, type?: string) =>
    new Request("http://x/", {
      method: "POST",
      body,
      headers: type ? { "content-type": type } : {},
    });
  assert.deepEqual(await readJsonBody(mk('{"a":1}', "application/json; charset=utf-8")), { a: 1 });
  assert.deepEqual(await readJsonBody(mk("[]", "application/vnd.api+json")), []);
  assert.equal(await status(readJsonBody(mk("{}"))), 415);
  assert.equal(await status(readJsonBody(mk("{}", "text/json"))), 415);
  assert.equal(await status(readJsonBody(mk("  ", "application/json"))), 400);
  assert.equal(
    await status(readJsonBody(mk(new Uint8Array([0xff, 0xfe]), "application/json"))),
    400,
  );
});

Deno.test("env: validated, errors name the variable and never its value", () => {
  const env = readEnv((k) =>
    ({
      SUPABASE_URL: "https://ref.supabase.co/",
      SUPABASE_SECRET_KEY: "sb_secret_x",
      ALLOWED_ORIGINS: "https://a.dev, https://b.dev",
    })[k]
  );
  assert.equal(env.supabaseUrl, "https://ref.supabase.co");
  assert.equal(env.jwksUrl?.href, "https://ref.supabase.co/auth/v1/.well-known/jwks.json");
  assert.deepEqual(env.secretKeys, { default: "sb_secret_x" });
  assert.deepEqual(env.allowedOrigins, ["https://a.dev", "https://b.dev"]);
  assert.equal(env.jwtAudience, "authenticated");
  const bad: [string, string][] = [
    ["SUPABASE_SECRET_KEYS", "sb_secret_leaked"],
    ["SUPABASE_SECRET_KEYS", '["a"]'],
    ["SUPABASE_JWKS", "{nope"],
    ["SUPABASE_JWKS_URL", "http://auth.example.com/jwks"],
    ["LOG_LEVEL", "loud"],
  ];
  for (const [name, value] of bad) {
    assert.throws(() => readEnv((k) => (k === name ? value : undefined)), (e: unknown) => {
      assert.ok(e instanceof EnvError);
      assert.match(e.message, new RegExp(name));
      assert.doesNotMatch(e.message, /leaked/);
      return true;
    });
  }
  assert.equal(
    readEnv((k) => (k === "SUPABASE_JWKS_URL" ? "http://127.0.0.1:54321/jwks" : undefined))
      .jwksUrl?.port,
    "54321",
  );
});

Deno.test("cors: exact, wildcard-subdomain and any-origin policies", () => {
  const p = corsPolicy(["https://app.dev", "https://*.preview.dev"]);
  assert.equal(p.headersFor("https://app.dev")["access-control-allow-origin"], "https://app.dev");
  assert.equal(
    p.headersFor("https://pr-1.preview.dev")["access-control-allow-origin"],
    "https://pr-1.preview.dev",
  );
  assert.equal(p.headersFor("https://a.b.preview.dev")["access-control-allow-origin"], undefined);
  assert.equal(p.headersFor("https://evil.dev")["access-control-allow-origin"], undefined);
  assert.equal(p.headersFor("https://evil.dev").vary, "Origin");
  const any = corsPolicy(["*"]);
  assert.equal(any.headersFor(null)["access-control-allow-origin"], "*");
  assert.match(any.headersFor(null)["access-control-expose-headers"]!, /Retry-After.*RateLimit/);
});

Deno.test("errors: unknown errors are 500 without internals; HttpError keeps its fields", async () => {
  const res = problemResponse(new Error("password=hunter2 at db.internal"), "req-1");
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.doesNotMatch(text, /hunter2|db\.internal/);
  assert.equal(JSON.parse(text).code, "internal_error");
  const limited = problemResponse(
    new HttpError({
      status: 429,
      code: "rate_limited",
      detail: "slow",
      headers: { "retry-after": "3" },
    }),
    "req-2",
  );
  assert.equal(limited.headers.get("retry-after"), "3");
  assert.equal((await limited.json()).detail, "slow");
});

Deno.test("a handler that throws is answered 500 problem+json with CORS, and logged with the request id", async () => {
  const lines: string[] = [];
  const fn = defineFunction({
    name: "boom",
    auth: "none",
    routes: [{
      method: "GET",
      path: "/x",
      handler: () => {
        throw new Error("secret internals");
      },
    }],
  }, {
    env: readEnv((k) => ({ ALLOWED_ORIGINS: "https://app.dev", ACCESS_LOG: "on" })[k]),
    log: createLogger("info", {}, (_l, line) => lines.push(line)),
  });
  const res = await fn.fetch(
    new Request("http://x/boom/x", {
      headers: { origin: "https://app.dev", "x-request-id": "abc-1" },
    }),
  );
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.dev");
  assert.equal(res.headers.get("x-request-id"), "abc-1");
  const body = await res.json();
  assert.equal(body.requestId, "abc-1");
  assert.doesNotMatch(JSON.stringify(body), /secret internals/);
  const logged = lines.map((l) => JSON.parse(l));
  const failure = logged.find((l) => l.msg === "request failed");
  assert.equal(failure.requestId, "abc-1");
  assert.equal(failure.message, "secret internals");
  assert.equal(logged.find((l) => l.msg === "request").status, 500);
});

Deno.test("routes: params, 405 with Allow, 404, both path forms", async () => {
  const fn = defineFunction({
    name: "items",
    auth: "none",
    routes: [
      { method: "GET", path: "/items/:id", handler: ({ params }) => ({ id: params.id }) },
      { method: "DELETE", path: "/items/:id", handler: () => new Response(null, { status: 204 }) },
    ],
  }, { env: readEnv(() => undefined), log: createLogger("error") });
  const r1 = await fn.fetch(new Request("http://x/functions/v1/items/items/a%20b"));
  assert.deepEqual(await r1.json(), { data: { id: "a b" } });
  const r2 = await fn.fetch(new Request("http://x/items/items/1", { method: "POST" }));
  assert.equal(r2.status, 405);
  assert.equal(r2.headers.get("allow"), "GET, DELETE, OPTIONS");
  await r2.body?.cancel();
  const r3 = await fn.fetch(new Request("http://x/items/nope"));
  assert.equal(r3.status, 404);
  await r3.body?.cancel();
  const r4 = await fn.fetch(new Request("http://x/items/items/%E0%A4%A"));
  assert.equal(r4.status, 400);
  await r4.body?.cancel();
});

Deno.test("cors: allows every header supabase-js sends (its own exported list) plus x-region", () => {
  const ours = new Set(ALLOWED_HEADERS.split(",").map((h) => h.trim()));
  const theirs = String(supabaseCors["Access-Control-Allow-Headers"]).split(",").map((h) =>
    h.trim().toLowerCase()
  );
  assert.ok(theirs.length >= 4);
  for (const h of [...theirs, "x-region"]) assert.ok(ours.has(h), `missing ${h}`);
});
