import assert from "node:assert/strict";
import { join } from "node:path";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "npm:jose@6";
import { LogHold, parseDevFlags } from "../../local/cli/mod.ts";
import {
  ConfigError,
  createLocalKeys,
  defaultProjectConfig,
  EnvFileError,
  loadProjectConfig,
  parseEnvFile,
  parseProjectConfig,
  publicJwks,
  signUserToken,
} from "../../local/project/mod.ts";
import { affectedFunctions, discoverFunctions } from "../../local/functions/mod.ts";
import { didWork } from "../../local/cron.ts";
import { FIXTURE_WORKDIR } from "./support/helpers.ts";

Deno.test("config.toml: functions, ports and defaults", () => {
  const config = parseProjectConfig(
    `[api]\nport = 6000\n[functions.a]\nverify_jwt = false\nentrypoint = "./x.ts"\n` +
      `[functions.b]\nenabled = false\n`,
    "config.toml",
  );
  assert.equal(config.apiPort, 6000);
  assert.equal(config.dbPort, null);
  assert.deepEqual(config.functions.a, {
    enabled: undefined,
    verifyJwt: false,
    entrypoint: "./x.ts",
    importMap: undefined,
  });
  assert.equal(config.functions.b!.enabled, false);
});

Deno.test("config.toml: malformed TOML names the file, line and column", () => {
  const text = `[api]\nport = 1\n[functions.a\nverify_jwt = true\n`;
  assert.throws(() => parseProjectConfig(text, "/p/config.toml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.line, 3);
    assert.match(e.message, /^\/p\/config\.toml:3:\d+: invalid TOML/);
    return true;
  });
});

Deno.test("config.toml: a wrong type is refused with its table", () => {
  assert.throws(
    () => parseProjectConfig(`[functions.a]\nverify_jwt = "yes"\n`, "c.toml"),
    /c\.toml: \[functions\.a\] verify_jwt must be true or false/,
  );
  assert.throws(() => parseProjectConfig(`[db]\nport = 70000\n`, "c.toml"), /\[db\] port/);
});

Deno.test("registry: skips _ folders and enabled = false, honours entrypoint and verify_jwt", async () => {
  const config = await loadProjectConfig(FIXTURE_WORKDIR);
  const specs = await discoverFunctions(FIXTURE_WORKDIR, config);
  const names = specs.map((s) => s.name);
  assert.ok(!names.includes("_shared"));
  assert.ok(!names.includes("disabled"));
  assert.deepEqual(names, [
    "api",
    "broken",
    "crashy",
    "custom",
    "env-echo",
    "guarded",
    "hang",
    "queue-worker",
    "stream",
  ]);
  const custom = specs.find((s) => s.name === "custom")!;
  assert.equal(
    custom.entrypoint,
    join(FIXTURE_WORKDIR, "supabase", "functions", "custom", "main.ts"),
  );
  assert.equal(specs.find((s) => s.name === "guarded")!.verifyJwt, true);
  assert.equal(specs.find((s) => s.name === "api")!.verifyJwt, false);
});

Deno.test("registry: a function absent from config.toml gets the CLI default verify_jwt = true", async () => {
  const specs = await discoverFunctions(FIXTURE_WORKDIR, defaultProjectConfig("x"));
  assert.ok(specs.every((s) => s.verifyJwt));
  assert.ok(specs.some((s) => s.name === "disabled"));
  assert.ok(!specs.some((s) => s.name === "custom")); // no index.ts, no entrypoint
});

Deno.test("env files: quotes, export, comments; bad lines name file and line", () => {
  const env = parseEnvFile(
    `# comment\nA=1\nexport B="two\\nlines"\nC='lit $x'\nD=plain # trailing\n\nE=\n`,
    "f",
  );
  assert.deepEqual(env, { A: "1", B: "two\nlines", C: "lit $x", D: "plain", E: "" });
  assert.throws(() => parseEnvFile("A=1\nnot a pair\n", "/x/.env"), (e: unknown) => {
    assert.ok(e instanceof EnvFileError);
    assert.equal(e.message, "/x/.env:2: expected KEY=value");
    return true;
  });
});

Deno.test("hot reload: changed paths map to the functions they affect", () => {
  const dir = "/p/supabase/functions";
  assert.deepEqual(
    affectedFunctions(dir, [`${dir}/api/index.ts`, `${dir}/api/x.ts`]),
    new Set(["api"]),
  );
  assert.equal(affectedFunctions(dir, [`${dir}/api/index.ts`, `${dir}/_shared/auth.ts`]), "all");
  assert.equal(affectedFunctions(dir, [`${dir}/.env`]), "all");
  assert.equal(affectedFunctions(dir, ["/p/supabase/config.toml"]), "all");
  assert.deepEqual(affectedFunctions(dir, [`${dir}/new-fn`]), new Set(["new-fn"]));
  assert.deepEqual(affectedFunctions(dir, [`${dir}/README.md`]), new Set());
});

Deno.test("flags: defaults, overrides and bad values", () => {
  const d = parseDevFlags([], () => undefined);
  assert.equal(d.port, null);
  assert.equal(d.cron, true);
  assert.equal(d.functionTimeoutMs, null); // config.toml [local.limits], else 150 s
  assert.equal(d.headTimeoutMs, 15_000);
  assert.equal(d.dbUrl, null);
  const o = parseDevFlags(
    [
      "--port",
      "7000",
      "--no-cron",
      "--function-timeout",
      "2",
      "--head-timeout",
      "0.5",
      "--env-file",
      "a",
      "--env-file",
      "b",
    ],
    (n) => (n === "DATABASE_URL" ? "postgres://x" : undefined),
  );
  assert.equal(o.port, 7000);
  assert.equal(o.cron, false);
  assert.equal(o.functionTimeoutMs, 2000);
  assert.equal(o.headTimeoutMs, 500);
  assert.throws(() => parseDevFlags(["--head-timeout", "0"]), /--head-timeout must be a number/);
  assert.equal(o.envFiles.length, 2);
  assert.equal(o.dbUrl, "postgres://x");
  assert.throws(() => parseDevFlags(["--port", "abc"]), /--port must be a number/);
  assert.throws(() => parseDevFlags(["--bogus"]), /bogus/);
});

Deno.test("local keys: user tokens verify against the published JWKS", async () => {
  const keys = await createLocalKeys();
  assert.match(keys.publishableKeys.default!, /^sb_publishable_/);
  assert.match(keys.secretKeys.cron!, /^sb_secret_/);
  assert.notEqual(keys.secretKeys.cron, keys.secretKeys.default);
  const jwks = publicJwks(keys);
  assert.equal("d" in jwks.keys[0]!, false, "the private part must never be published");
  const token = await signUserToken(keys, {
    supabaseUrl: "http://127.0.0.1:54321",
    sub: "user-1",
    email: "a@example.com",
    ttlSeconds: 60,
  });
  assert.equal(decodeProtectedHeader(token).kid, keys.signingKey.kid);
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    audience: "authenticated",
    issuer: "http://127.0.0.1:54321/auth/v1",
    algorithms: ["ES256"],
  });
  assert.equal(payload.sub, "user-1");
  assert.equal(payload.role, "authenticated");
  assert.equal(payload.email, "a@example.com");
  assert.equal(payload.exp! - payload.iat!, 60);
  const other = await createLocalKeys();
  await assert.rejects(() => jwtVerify(token, createLocalJWKSet(publicJwks(other))));
});

Deno.test("log hold: a request's lines wait for its outcome, late lines follow it", () => {
  const info: string[] = [];
  const debug: string[] = [];
  const hold = new LogHold({ info: (l) => info.push(l), debug: (l) => debug.push(l) });
  const quiet = hold.hold("cron-1");
  const loud = hold.hold("cron-2");
  hold.log("access line", "cron-1");
  hold.log('[queue-worker] {"requestId":"cron-2"}');
  hold.log("unrelated");
  assert.deepEqual([info, debug], [["unrelated"], []]);
  quiet(false);
  loud(true);
  // The function's output pipe can deliver a line after the response decided the level.
  hold.log('[queue-worker] late {"requestId":"cron-1"}');
  hold.log('[queue-worker] late {"requestId":"cron-2"}');
  assert.deepEqual(info, [
    "unrelated",
    '[queue-worker] {"requestId":"cron-2"}',
    '[queue-worker] late {"requestId":"cron-2"}',
  ]);
  assert.deepEqual(debug, ["access line", '[queue-worker] late {"requestId":"cron-1"}']);
});

Deno.test("cron: a summary did work when any count other than a duration is positive", () => {
  const cases: [unknown, boolean][] = [
    [{ data: { claimed: 0, completed: 0, durationMs: 12 } }, false],
    [{ data: { claimed: 1, completed: 1, durationMs: 3 } }, true],
    [{ data: { claimed: 0, deadLettered: 2 } }, true],
    [{ data: { released: 1 } }, true],
    [{ data: {} }, false],
    [{ data: null }, false],
    ["not json", false],
    [null, false],
  ];
  for (const [body, expected] of cases) assert.equal(didWork(body), expected, JSON.stringify(body));
});
