/**
 * The `api` function end to end: real HTTP on loopback, real JWTs, real Postgres.
 * Every bad input gets the right status and a problem+json body with CORS headers.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { action, defineFunction, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";
import { makeProject, signToken, unsecuredToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";
import { apiSpec } from "../../supabase/functions/api/index.ts";

const ORIGIN = "https://app.example.com";

function startApi(env: Record<string, string>) {
  return defineFunction(apiSpec, { env: readEnv((k) => env[k]) });
}

async function problem(res: Response) {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
  assert.ok(res.headers.get("x-request-id"));
  const body = await res.json();
  assert.equal(body.status, res.status);
  assert.equal(typeof body.code, "string");
  assert.equal(typeof body.title, "string");
  assert.equal(typeof body.detail, "string");
  assert.equal(body.requestId, res.headers.get("x-request-id"));
  assert.ok(body.type.endsWith(body.code));
  return body;
}

Deno.test("api over HTTP: happy paths, RLS, and every bad input", async (t) => {
  await using db = await freshDatabase();
  const project = await makeProject({ ALLOWED_ORIGINS: ORIGIN, SUPABASE_DB_URL: db.url });
  const fn = startApi(project.env);
  await using server = serve(fn.fetch);
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const url = `${server.url}/functions/v1/api`;
  const alice = await signToken(project.es256, { sub: crypto.randomUUID(), email: "a@x.dev" });
  const bob = await signToken(project.rs256, { sub: crypto.randomUUID(), email: "b@x.dev" });

  const call = (body: unknown, headers: Record<string, string> = {}, init: RequestInit = {}) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", origin: ORIGIN, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      ...init,
    });
  const asAlice = { authorization: `Bearer ${alice}` };

  await t.step("echo with a user JWT", async () => {
    const res = await call({ action: "echo", payload: { message: "hi" } }, asAlice);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
    assert.deepEqual(await res.json(), { data: { message: "hi" } });
  });

  await t.step("echo with the publishable key", async () => {
    const res = await call({ action: "echo", payload: { message: "hi" } }, {
      apikey: project.publishable,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { data: { message: "hi" } });
  });

  await t.step("whoami returns sub, role, email and mode", async () => {
    const res = await call({ action: "whoami" }, { authorization: `Bearer ${bob}` });
    const { data } = await res.json();
    assert.equal(data.email, "b@x.dev");
    assert.equal(data.role, "authenticated");
    assert.equal(data.authMode, "user");
    assert.match(data.sub, /^[0-9a-f-]{36}$/);
  });

  await t.step("whoami refuses the publishable key (403)", async () => {
    const res = await call({ action: "whoami" }, { apikey: project.publishable });
    assert.equal(res.status, 403);
    assert.equal((await problem(res)).code, "forbidden_credential");
  });

  await t.step("notes are scoped by RLS to their owner", async () => {
    for (const body of ["one", "two"]) {
      const res = await call({ action: "notes.create", payload: { body } }, asAlice);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("ratelimit-policy")!, /q=30;w=60/);
      assert.match(res.headers.get("ratelimit")!, /r=\d+/);
      await res.body?.cancel();
    }
    const mine = await (await call({ action: "notes.list", payload: {} }, asAlice)).json();
    assert.deepEqual(mine.data.map((n: { body: string }) => n.body), ["two", "one"]);
    const theirs = await (await call({ action: "notes.list", payload: {} }, {
      authorization: `Bearer ${bob}`,
    })).json();
    assert.deepEqual(theirs.data, []);
    const [count] = await db.sql`select count(*)::int as n from public.notes`;
    assert.equal(count!.n, 2);
  });

  await t.step("preflight: allowed origin 204, disallowed 403 without ACAO", async () => {
    const ok = await fetch(url, {
      method: "OPTIONS",
      headers: {
        origin: ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
      },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("access-control-allow-origin"), ORIGIN);
    assert.match(ok.headers.get("access-control-allow-headers")!, /x-client-info/);
    assert.match(ok.headers.get("access-control-allow-headers")!, /x-region/);
    await ok.body?.cancel();
    const bad = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example" },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers.get("access-control-allow-origin"), null);
    assert.equal(bad.headers.get("content-type"), "application/problem+json");
    assert.equal((await bad.json()).code, "origin_not_allowed");
  });

  const now = Math.floor(Date.now() / 1000);
  const cases: [string, () => Promise<Response>, number, string][] = [
    ["malformed JSON", () => call("{nope", asAlice), 400, "malformed_json"],
    ["a JSON array", () => call([1, 2], asAlice), 400, "invalid_envelope"],
    ["a JSON string", () => call('"echo"', asAlice), 400, "invalid_envelope"],
    ["missing action", () => call({ payload: {} }, asAlice), 400, "missing_action"],
    ["unknown action", () => call({ action: "nope" }, asAlice), 404, "unknown_action"],
    [
      "payload failing the schema",
      () => call({ action: "echo", payload: { message: "" } }, asAlice),
      422,
      "validation_failed",
    ],
    [
      "body over the limit",
      () => call({ action: "echo", payload: { message: "x".repeat(1_100_000) } }, asAlice),
      413,
      "body_too_large",
    ],
    [
      "body over the limit, chunked with no Content-Length",
      () =>
        call("", asAlice, {
          body: new Blob(["{" + " ".repeat(1_100_000) + "}"]).stream(),
        }),
      413,
      "body_too_large",
    ],
    [
      "wrong content type",
      () => call("action=echo", { ...asAlice, "content-type": "text/plain" }),
      415,
      "unsupported_media_type",
    ],
    [
      "wrong method",
      () => fetch(url, { headers: { origin: ORIGIN, ...asAlice } }),
      405,
      "method_not_allowed",
    ],
    ["unknown path", () => call({}, asAlice, { method: "PUT" }), 405, "method_not_allowed"],
    ["missing token", () => call({ action: "whoami" }), 401, "missing_credentials"],
    [
      "garbage token",
      () => call({ action: "whoami" }, { authorization: "Bearer not.a.jwt" }),
      401,
      "invalid_token",
    ],
    [
      "alg none",
      () =>
        call({ action: "whoami" }, {
          authorization: `Bearer ${
            unsecuredToken({ sub: "x", role: "authenticated", aud: "authenticated", exp: now + 60 })
          }`,
        }),
      401,
      "invalid_token",
    ],
  ];
  const tokenCases: [string, () => Promise<string>][] = [
    ["expired", () => signToken(project.es256, { expiresIn: -120 })],
    ["not yet valid", () => signToken(project.es256, { notBefore: 600 })],
    ["wrong audience", () => signToken(project.es256, { aud: "someone-else" })],
    ["signed by an unknown key", () => signToken(project.stranger)],
    ["without kid", () => signToken(project.es256, { kid: null })],
    ["without exp", () => signToken(project.es256, { expiresIn: null })],
    ["without sub", () => signToken(project.es256, { sub: null })],
    [
      "HS256 signed with the public key (algorithm confusion)",
      () => signToken({ secret: JSON.stringify(project.es256.publicJwk) }),
    ],
  ];
  for (const [name, token] of tokenCases) {
    cases.push([
      `token ${name}`,
      async () => call({ action: "whoami" }, { authorization: `Bearer ${await token()}` }),
      401,
      "invalid_token",
    ]);
  }
  cases.push(
    [
      "wrong publishable key",
      () => call({ action: "echo", payload: { message: "x" } }, { apikey: "sb_publishable_wrong" }),
      401,
      "invalid_api_key",
    ],
    [
      "a secret key where only user/publishable are accepted",
      () => call({ action: "echo", payload: { message: "x" } }, { apikey: project.secret }),
      403,
      "forbidden_credential",
    ],
    [
      "invalid JWT is not downgraded to a valid apikey",
      () =>
        call({ action: "echo", payload: { message: "x" } }, {
          authorization: "Bearer not.a.jwt",
          apikey: project.publishable,
        }),
      401,
      "invalid_token",
    ],
  );
  for (const [name, request, status, code] of cases) {
    await t.step(`${status} ${code}: ${name}`, async () => {
      const res = await request();
      assert.equal(res.status, status, name);
      assert.equal((await problem(res)).code, code);
    });
  }

  await t.step("422 lists field errors with JSON pointers", async () => {
    const res = await call({ action: "echo", payload: { message: 42 } }, asAlice);
    const body = await problem(res);
    assert.equal(body.errors[0].pointer, "/payload/message");
  });
});

Deno.test("api over HTTP: database errors that are the caller's fault are 4xx and leak nothing", async (t) => {
  await using db = await freshDatabase();
  const project = await makeProject({ ALLOWED_ORIGINS: ORIGIN, SUPABASE_DB_URL: db.url });
  const fn = startApi(project.env);
  await using server = serve(fn.fetch);
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const user = `Bearer ${await signToken(project.es256, { sub: crypto.randomUUID() })}`;
  const anon = `Bearer ${await signToken(project.es256, { role: "anon" })}`;
  const send = (raw: string | Uint8Array, authorization: string) =>
    fetch(`${server.url}/functions/v1/api`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: ORIGIN, authorization },
      body: typeof raw === "string" ? raw : new Blob([raw as Uint8Array<ArrayBuffer>]),
    });
  const create = (body: string) => `{"action":"notes.create","payload":{"body":${body}}}`;
  const cases: [string, string | Uint8Array, string, number, string][] = [
    ["NUL in a note", create('"a\\u0000b"'), user, 422, "invalid_value"],
    ["only a NUL", create('"\\u0000"'), user, 422, "invalid_value"],
    ["NUL among other text", create('"x\\u0000\\u00e9\\ud83d\\ude00"'), user, 422, "invalid_value"],
    ["a lone high surrogate escape", create('"\\ud800"'), user, 400, "malformed_body"],
    ["a lone low surrogate escape", create('"a\\udc00"'), user, 400, "malformed_body"],
    ["a reversed surrogate pair", create('"\\udc00\\ud800"'), user, 400, "malformed_body"],
    [
      "invalid UTF-8 bytes",
      new Uint8Array([...new TextEncoder().encode(create('"a')), 0xff, 0xfe, 0x22, 0x7d, 0x7d]),
      user,
      400,
      "malformed_body",
    ],
    [
      "a number out of range",
      '{"action":"notes.list","payload":{"limit":1e400}}',
      user,
      422,
      "validation_failed",
    ],
    [
      "a negative limit",
      '{"action":"notes.list","payload":{"limit":-1}}',
      user,
      422,
      "validation_failed",
    ],
    ["role anon creating a note", create('"hi"'), anon, 403, "insufficient_privilege"],
    ["role anon listing notes", '{"action":"notes.list"}', anon, 403, "insufficient_privilege"],
  ];
  for (const [name, raw, authorization, status, code] of cases) {
    await t.step(`${status} ${code}: ${name}`, async () => {
      const res = await send(raw, authorization);
      const text = await res.clone().text();
      assert.equal(res.status, status, `${name}: ${text}`);
      assert.equal((await problem(res)).code, code);
      for (const leak of ["notes", "permission", "0x00", "insert", "select", "public", "UTF8"]) {
        assert.ok(!text.toLowerCase().includes(leak.toLowerCase()), `${name} leaks "${leak}"`);
      }
    });
  }

  await t.step("nothing was stored by any of them; a clean note still is", async () => {
    const [before] = await db.sql`select count(*)::int as n from public.notes`;
    assert.equal(before!.n, 0);
    const res = await send(create('"caf\\u00e9 \\ud83d\\ude00"'), user);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).data.body, "café 😀");
  });

  await t.step("a NUL the handler does not store is returned intact", async () => {
    const res = await send('{"action":"echo","payload":{"message":"a\\u0000b"}}', user);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { data: { message: "a\u0000b" } });
  });
});

/** A body of `total` bytes that records whether anything ever read from it. */
function recordingBody(total: number) {
  let sent = 0;
  const state = { pulled: false };
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      state.pulled = true;
      if (sent >= total) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.byteLength;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("api: a request with no credential gets 401 before its body is read", async (t) => {
  const project = await makeProject({ ALLOWED_ORIGINS: ORIGIN });
  const fn = startApi(project.env);
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const url = "http://127.0.0.1/functions/v1/api";

  const cases: [string, Record<string, string>][] = [
    ["a 2 MiB JSON stream", { "content-type": "application/json" }],
    ["declaring 1 GB", { "content-type": "application/json", "content-length": "1000000000" }],
    ["not even JSON", { "content-type": "text/plain" }],
  ];
  for (const [name, headers] of cases) {
    await t.step(`401 missing_credentials, body untouched: ${name}`, async () => {
      const { stream, state } = recordingBody(2 * 1024 * 1024);
      const res = await fn.fetch(
        new Request(url, {
          method: "POST",
          headers: { origin: ORIGIN, ...headers },
          body: stream,
          duplex: "half",
        } as RequestInit),
      );
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("www-authenticate"), "Bearer");
      assert.equal((await problem(res)).code, "missing_credentials");
      assert.equal(state.pulled, false);
      await stream.cancel();
    });
  }

  await t.step("over HTTP: 5 MB without credentials is 401, not 413", async () => {
    await using server = serve(fn.fetch);
    const res = await fetch(`${server.url}/functions/v1/api`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json" },
      body: JSON.stringify({ action: "echo", payload: { message: "x".repeat(5_000_000) } }),
    });
    assert.equal(res.status, 401);
    assert.equal((await problem(res)).code, "missing_credentials");
  });

  await t.step("a credential, even a wrong one, still has its body read and judged", async () => {
    const { stream, state } = recordingBody(2 * 1024 * 1024);
    const res = await fn.fetch(
      new Request(url, {
        method: "POST",
        headers: { origin: ORIGIN, "content-type": "application/json", apikey: "sb_wrong" },
        body: stream,
        duplex: "half",
      } as RequestInit),
    );
    assert.equal(res.status, 413);
    assert.equal(state.pulled, true);
    await res.body?.cancel();
  });
});

Deno.test("per-action auth: when some action accepts none, anonymous bodies are read", async () => {
  const project = await makeProject({ ALLOWED_ORIGINS: ORIGIN });
  const fn = defineFunction({
    name: "mixed",
    auth: "user",
    actions: {
      open: action({ auth: ["user", "none"], input: z.object({}), handler: () => "open" }),
      closed: action({ input: z.object({}), handler: () => "closed" }),
    },
  }, { env: readEnv((k) => project.env[k]) });
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  await using server = serve(fn.fetch);
  const call = (name: string) =>
    fetch(`${server.url}/functions/v1/mixed`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json" },
      body: JSON.stringify({ action: name }),
    });
  const open = await call("open");
  assert.equal(open.status, 200);
  assert.deepEqual(await open.json(), { data: "open" });
  const closed = await call("closed");
  assert.equal(closed.status, 401);
  assert.equal((await problem(closed)).code, "missing_credentials");
  const malformed = await fetch(`${server.url}/functions/v1/mixed`, {
    method: "POST",
    headers: { origin: ORIGIN, "content-type": "application/json" },
    body: "{nope",
  });
  assert.equal(malformed.status, 400);
  assert.equal((await problem(malformed)).code, "malformed_json");
});
