/**
 * Authentication details: remote JWKS over real loopback HTTP (cached, refetched
 * on an unknown kid at most once per cooldown), the verified-token cache (never
 * past exp, dropped when its key leaves the JWKS), legacy HS256 and service_role
 * JWTs, named secret keys.
 */
import assert from "node:assert/strict";
import { createAuthenticator, HttpError, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { makeKey, makeProject, signToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

const req = (headers: Record<string, string>) => new Request("http://x/fn", { headers });

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (error) {
    if (error instanceof HttpError) return error.status;
    throw error;
  }
}

Deno.test("remote JWKS: fetched once, refetched on unknown kid within cooldown limits, rotated keys drop cached tokens", async () => {
  const first = await makeKey("ES256");
  const second = await makeKey("ES256");
  let published = [first.publicJwk];
  let fetches = 0;
  await using jwksServer = serve(() => {
    fetches++;
    return Response.json({ keys: published });
  });
  let clock = Date.now();
  const env = readEnv((k) =>
    ({
      SUPABASE_URL: "http://127.0.0.1:1",
      SUPABASE_JWKS_URL: `${jwksServer.url}/auth/v1/.well-known/jwks.json`,
    })[k]
  );
  const auth = createAuthenticator(env, { now: () => clock });
  const tokenA = await signToken(first);
  const bearer = (t: string) => req({ authorization: `Bearer ${t}` });

  assert.equal((await auth.authenticate(bearer(tokenA), ["user"])).mode, "user");
  assert.equal(fetches, 1);
  // Cached: no further fetch, even for a new token of the same key.
  await auth.authenticate(bearer(await signToken(first)), ["user"]);
  assert.equal(fetches, 1);

  // A token from a key not yet published: one refetch once the cooldown since the
  // last fetch has passed, then the cooldown holds again.
  const tokenB = await signToken(second);
  assert.equal(await status(auth.authenticate(bearer(tokenB), ["user"])), 401);
  assert.equal(fetches, 1, "no refetch within 30 s of the last fetch");
  clock += 31_000;
  assert.equal(await status(auth.authenticate(bearer(tokenB), ["user"])), 401);
  assert.equal(fetches, 2);
  assert.equal(await status(auth.authenticate(bearer(tokenB), ["user"])), 401);
  assert.equal(fetches, 2, "unknown kids must not refetch inside the cooldown");

  // Rotation: the second key is published, the first removed.
  published = [second.publicJwk];
  clock += 31_000;
  assert.equal((await auth.authenticate(bearer(tokenB), ["user"])).mode, "user");
  assert.equal(fetches, 3);
  // tokenA was cached, but its key left the JWKS: it must now be refused.
  assert.equal(await status(auth.authenticate(bearer(tokenA), ["user"])), 401);
});

Deno.test("JWKS unreachable with no keys in hand answers 503, not 401", async () => {
  const env = readEnv((k) =>
    ({ SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_JWKS_URL: "http://127.0.0.1:1/jwks" })[k]
  );
  const auth = createAuthenticator(env);
  const key = await makeKey("ES256");
  const token = await signToken(key);
  assert.equal(
    await status(auth.authenticate(req({ authorization: `Bearer ${token}` }), ["user"])),
    503,
  );
});

Deno.test("verified-token cache never serves a token past its exp", async () => {
  const project = await makeProject();
  let clock = Date.now();
  const auth = createAuthenticator(readEnv((k) => project.env[k]), { now: () => clock });
  const token = await signToken(project.es256, { expiresIn: 60 });
  const r = () => req({ authorization: `Bearer ${token}` });
  assert.equal((await auth.authenticate(r(), ["user"])).mode, "user");
  clock += 120_000; // past exp + the 30 s skew
  assert.equal(await status(auth.authenticate(r(), ["user"])), 401);
});

Deno.test("legacy HS256: refused without SUPABASE_JWT_SECRET, accepted with it", async () => {
  const project = await makeProject();
  const legacyUser = await signToken({ secret: project.jwtSecret });
  const without = createAuthenticator(readEnv((k) => project.env[k]));
  assert.equal(
    await status(without.authenticate(req({ authorization: `Bearer ${legacyUser}` }), ["user"])),
    401,
  );
  const env: Record<string, string> = { ...project.env, SUPABASE_JWT_SECRET: project.jwtSecret };
  const withSecret = createAuthenticator(readEnv((k) => env[k]));
  const ctx = await withSecret.authenticate(req({ authorization: `Bearer ${legacyUser}` }), [
    "user",
  ]);
  assert.equal(ctx.mode, "user");
});

Deno.test("legacy service_role JWT satisfies `secret` only when the JWT secret is set", async () => {
  const project = await makeProject();
  const serviceRole = await signToken({ secret: project.jwtSecret }, {
    role: "service_role",
    sub: null,
    aud: null,
    iss: "supabase",
  });
  const headers = { authorization: `Bearer ${serviceRole}`, apikey: serviceRole };
  const without = createAuthenticator(readEnv((k) => project.env[k]));
  assert.equal(await status(without.authenticate(req(headers), ["secret"])), 401);
  const env: Record<string, string> = { ...project.env, SUPABASE_JWT_SECRET: project.jwtSecret };
  const auth = createAuthenticator(readEnv((k) => env[k]));
  const ctx = await auth.authenticate(req(headers), ["secret"]);
  assert.deepEqual([ctx.mode, ctx.keyName, ctx.role], ["secret", "service_role", "service_role"]);
  // Not a user: a user-only endpoint refuses it.
  assert.equal(await status(auth.authenticate(req(headers), ["user"])), 401);
  // A legacy user JWT is valid but is not a secret: 403.
  const user = await signToken({ secret: project.jwtSecret });
  assert.equal(
    await status(auth.authenticate(req({ authorization: `Bearer ${user}` }), ["secret"])),
    403,
  );
});

Deno.test("named secret keys: secret:cron, secret:*, and the default key", async () => {
  const project = await makeProject();
  const auth = createAuthenticator(readEnv((k) => project.env[k]));
  const cron = req({ apikey: project.cronSecret });
  assert.equal((await auth.authenticate(cron, ["secret:cron"])).keyName, "cron");
  assert.equal((await auth.authenticate(cron, ["secret:*"])).keyName, "cron");
  assert.equal(await status(auth.authenticate(cron, ["secret"])), 403);
  const main = req({ apikey: project.secret });
  assert.equal(await status(auth.authenticate(main, ["secret:cron"])), 403);
  assert.equal((await auth.authenticate(main, ["secret:cron", "secret"])).keyName, "default");
  assert.equal(await status(auth.authenticate(req({}), ["secret:*"])), 401);
  assert.equal((await auth.authenticate(req({}), ["secret", "none"])).mode, "none");
});

Deno.test("a valid user JWT on a secret-only endpoint is 403, an invalid one 401", async () => {
  const project = await makeProject();
  const auth = createAuthenticator(readEnv((k) => project.env[k]));
  const good = await signToken(project.es256);
  const bad = await signToken(project.stranger);
  assert.equal(
    await status(auth.authenticate(req({ authorization: `Bearer ${good}` }), ["secret"])),
    403,
  );
  assert.equal(
    await status(auth.authenticate(req({ authorization: `Bearer ${bad}` }), ["secret"])),
    401,
  );
});
