/**
 * The environment a function process sees: the machine's proxy, CA and cache
 * settings pass through (so npm imports work behind a TLS-intercepting
 * proxy), and an edit of `supabase/functions/.env` reaches the functions on
 * the reload it triggers, not only after a restart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDevFlags } from "../../local/cli/mod.ts";
import { PASSTHROUGH } from "../../local/functions/mod.ts";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { startStack } from "../../local/stack.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { eventually, fixtureArgs, tempDir } from "./support/helpers.ts";

const TEST_CA = join(PROJECT_ROOT, "tests", "fixtures", "test_ca.pem");

async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

Deno.test("function env: proxy, CA and cache settings of the machine reach the function", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  // Values a machine behind a TLS-intercepting proxy would have. Files must be real PEMs (Deno
  // loads DENO_CERT at start-up); the proxy is never used, as NO_PROXY covers every host.
  const host: Record<string, string> = {
    SSL_CERT_FILE: TEST_CA,
    SSL_CERT_DIR: join(PROJECT_ROOT, "tests", "fixtures"),
    NODE_EXTRA_CA_CERTS: TEST_CA,
    DENO_CERT: TEST_CA,
    DENO_TLS_CA_STORE: "mozilla",
    HTTP_PROXY: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    ALL_PROXY: "http://127.0.0.1:9",
    http_proxy: "http://127.0.0.1:9",
    https_proxy: "http://127.0.0.1:9",
    all_proxy: "http://127.0.0.1:9",
    NO_PROXY: "*",
    no_proxy: "*",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? await denoDir(),
    XDG_CACHE_HOME: join(dir.path, "xdg-cache"),
    NPM_CONFIG_REGISTRY: Deno.env.get("NPM_CONFIG_REGISTRY") ?? "https://registry.npmjs.org/",
    npm_config_registry: Deno.env.get("npm_config_registry") ?? "https://registry.npmjs.org/",
    // Not a setting a function needs: must not leak in.
    MY_SHELL_SECRET: "do-not-pass",
  };
  const options = parseDevFlags(
    [...fixtureArgs(dir.path, freePort()), "--no-cron", "--no-watch"],
    (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined),
  );
  const stack = await startStack(options, {
    log: () => {},
    hostEnv: (name) => host[name] ?? Deno.env.get(name),
  });
  try {
    const names = [...Object.keys(host), "PATH", "HOME"];
    const query = names.map((n) => `name=${encodeURIComponent(n)}`).join("&");
    const res = await fetch(`${stack.url}/functions/v1/env-echo?${query}`);
    assert.equal(res.status, 200);
    const seen = await res.json();
    for (const [name, value] of Object.entries(host)) {
      assert.equal(seen[name], name === "MY_SHELL_SECRET" ? null : value, name);
    }
    assert.equal(seen.PATH, Deno.env.get("PATH") ?? null);
    for (const name of Object.keys(host)) {
      if (name !== "MY_SHELL_SECRET") assert.ok(PASSTHROUGH.includes(name), name);
    }
  } finally {
    await stack.stop();
  }
});

Deno.test("function env: editing supabase/functions/.env applies on the reload", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const project = join(dir.path, "project");
  const functions = join(project, "supabase", "functions");
  await Deno.mkdir(join(functions, "greet"), { recursive: true });
  await Deno.writeTextFile(
    join(functions, "greet", "index.ts"),
    `export default { fetch: () => new Response(Deno.env.get("GREETING") ?? "(unset)") };\n`,
  );
  await Deno.writeTextFile(
    join(project, "supabase", "config.toml"),
    `[functions.greet]\nverify_jwt = false\n`,
  );
  const envFile = join(functions, ".env");
  await Deno.writeTextFile(envFile, "GREETING=hello\n");
  const options = parseDevFlags([
    "--workdir",
    project,
    "--data-dir",
    join(dir.path, "state"),
    "--port",
    String(freePort()),
    "--no-cron",
  ], (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined));
  const logs: string[] = [];
  const stack = await startStack(options, {
    log: (line) => logs.push(line),
    hostEnv: (name) => Deno.env.get(name),
  });
  const greet = async () => await (await fetch(`${stack.url}/functions/v1/greet`)).text();
  const nextLog = async (pattern: RegExp, action: () => Promise<void>) => {
    const before = logs.length;
    await action();
    return await eventually(
      `a log line matching ${pattern}`,
      () => logs.slice(before).find((l) => pattern.test(l)),
    );
  };
  try {
    assert.equal(await greet(), "hello");

    await nextLog(
      /^reloaded all functions/,
      () => Deno.writeTextFile(envFile, "GREETING=bonjour\n"),
    );
    assert.equal(await greet(), "bonjour");

    // A broken .env is reported and changes nothing: the last good values keep serving.
    const failed = await nextLog(
      /^reload failed/,
      () => Deno.writeTextFile(envFile, "GREETING=hola\nnot a pair\n"),
    );
    assert.match(failed, /\.env:2: expected KEY=value/);
    assert.equal(await greet(), "bonjour");

    await nextLog(/^reloaded all functions/, () => Deno.remove(envFile));
    assert.equal(await greet(), "(unset)");
  } finally {
    await stack.stop();
  }
});
