/**
 * Differential test: this project's auth and `@supabase/server`'s `verifyAuth`
 * (Supabase's official helper) must agree on every modern credential (asymmetric
 * JWTs from the JWKS, sb_ API keys) under every auth mode: same accept/reject,
 * same mode, key name and subject. Where we are deliberately stricter, the test
 * says so and checks both sides, so a change on either side is noticed.
 */
import assert from "node:assert/strict";
import { verifyAuth } from "npm:@supabase/server@1/core";
import {
  type AuthMode,
  createAuthenticator,
  readEnv,
} from "../../supabase/functions/_shared/mod.ts";
import { makeProject, signToken, unsecuredToken } from "../_harness/keys.ts";

type Outcome = { ok: false } | {
  ok: true;
  mode: string;
  keyName: string | null;
  sub: string | null;
};

Deno.test("auth agrees with @supabase/server verifyAuth on modern credentials", async (t) => {
  const project = await makeProject();
  const ours = createAuthenticator(readEnv((k) => project.env[k]));
  const theirsEnv = {
    url: project.env.SUPABASE_URL!,
    publishableKeys: { default: project.publishable },
    secretKeys: { default: project.secret, cron: project.cronSecret },
    jwks: project.jwks as unknown as { keys: [] },
  };
  const now = Math.floor(Date.now() / 1000);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const credentials: Record<string, Record<string, string>> = {
    "no credentials": {},
    "ES256 user": bearer(await signToken(project.es256, { email: "a@b.c" })),
    "RS256 user": bearer(await signToken(project.rs256)),
    "ES256 user + publishable key": {
      ...bearer(await signToken(project.es256)),
      apikey: project.publishable,
    },
    "expired": bearer(await signToken(project.es256, { expiresIn: -3600 })),
    "not yet valid": bearer(await signToken(project.es256, { notBefore: 3600 })),
    "unknown key": bearer(await signToken(project.stranger)),
    "no kid": bearer(await signToken(project.es256, { kid: null })),
    "no sub": bearer(await signToken(project.es256, { sub: null })),
    "alg none": bearer(
      unsecuredToken({ sub: "x", aud: "authenticated", role: "authenticated", exp: now + 60 }),
    ),
    "garbage bearer": bearer("abc.def.ghi"),
    "HS256 signed with the public key": bearer(
      await signToken({ secret: JSON.stringify(project.es256.publicJwk) }),
    ),
    "publishable key": { apikey: project.publishable },
    "publishable key also as bearer (supabase-js, no session)": {
      apikey: project.publishable,
      ...bearer(project.publishable),
    },
    "wrong publishable key": { apikey: "sb_publishable_nope" },
    "secret key": { apikey: project.secret },
    "cron secret key": { apikey: project.cronSecret },
    "wrong secret key": { apikey: "sb_secret_nope" },
  };
  const modes: (AuthMode | AuthMode[])[] = [
    "user",
    "publishable",
    "secret",
    "secret:cron",
    "secret:*",
    ["user", "publishable"],
    ["user", "secret"],
    "none",
  ];

  async function runOurs(headers: Record<string, string>, mode: AuthMode | AuthMode[]) {
    try {
      const ctx = await ours.authenticate(
        new Request("http://x/", { headers }),
        Array.isArray(mode) ? mode : [mode],
      );
      return { ok: true, mode: ctx.mode, keyName: ctx.keyName, sub: ctx.sub } as Outcome;
    } catch {
      return { ok: false } as Outcome;
    }
  }
  async function runTheirs(headers: Record<string, string>, mode: AuthMode | AuthMode[]) {
    const { data, error } = await verifyAuth(new Request("http://x/", { headers }), {
      auth: mode as never,
      env: theirsEnv,
    });
    if (error || !data) return { ok: false } as Outcome;
    const d = data as {
      authMode: string;
      keyName: string | null;
      userClaims: { id?: string } | null;
    };
    return {
      ok: true,
      mode: d.authMode,
      keyName: d.keyName,
      sub: d.userClaims?.id ?? null,
    } as Outcome;
  }

  let compared = 0;
  for (const [name, headers] of Object.entries(credentials)) {
    await t.step(name, async () => {
      for (const mode of modes) {
        const [a, b] = [await runOurs(headers, mode), await runTheirs(headers, mode)];
        assert.deepEqual(a, b, `${name} under ${JSON.stringify(mode)}`);
        compared++;
      }
    });
  }
  assert.equal(compared, Object.keys(credentials).length * modes.length);

  await t.step(
    "deliberately stricter: wrong aud and missing exp are refused here only",
    async () => {
      for (
        const token of [
          await signToken(project.es256, { aud: "not-authenticated" }),
          await signToken(project.es256, { expiresIn: null }),
        ]
      ) {
        assert.deepEqual(await runOurs(bearer(token), "user"), { ok: false });
        assert.equal((await runTheirs(bearer(token), "user")).ok, true);
      }
    },
  );
});
