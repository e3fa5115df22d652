/**
 * `deno task test`: the whole suite, as CI runs it. (Not named test.ts: `deno test`
 * would pick it up as a test file.)
 *
 * 1. installs npm dependencies into ./node_modules (Deno from npm is enough);
 * 2. static checks (static_checks.ts, shared with `deno task check`): deno fmt
 *    --check, deno lint, deno check, and each function entrypoint type-checked on
 *    its own (as `supabase functions deploy` sees it);
 * 3. starts an embedded Postgres (unless DATABASE_URL is set) and builds a
 *    template database: local bootstrap + every migration;
 * 4. runs the Supabase CLI's security advisors against it;
 * 5. runs `deno test`, then prints one line: `N passed, M failed`.
 *
 * Extra arguments are passed to `deno test` (e.g. a file or `--filter`).
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { PROJECT_ROOT } from "../local/project/mod.ts";
import { startPostgres } from "../local/database/mod.ts";
import { buildTemplate, freePort, withDatabase } from "../tests/_harness/database.ts";
import { countJUnit } from "./junit.ts";
import { runStaticChecks } from "./static_checks.ts";

const deno = Deno.execPath();
const results: { name: string; ok: boolean }[] = [];
const record = (name: string, ok: boolean) => {
  results.push({ name, ok });
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
};

async function install(): Promise<void> {
  const out = await new Deno.Command(deno, {
    args: ["install", "--quiet"],
    cwd: PROJECT_ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("deno install failed");
}

async function staticChecks(): Promise<void> {
  await runStaticChecks(PROJECT_ROOT, ({ name, ok, output }) => {
    if (!ok && output) console.log(output);
    record(name, ok);
  });
}

async function advisors(url: string): Promise<void> {
  const args = ["-y", "supabase@3", "db", "advisors", `--remote=${url}`, "--type=security"];
  const out = await new Deno.Command("npx", {
    args: [...args, "--level=info", "--output-format=json", "--yes"],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output().catch((error) => ({ success: false, stdout: new Uint8Array(), error }));
  const stdout = new TextDecoder().decode(out.stdout);
  let findings: unknown[] = [];
  try {
    const parsed = JSON.parse(stdout || "[]");
    findings = Array.isArray(parsed) ? parsed : parsed.results;
    if (!Array.isArray(findings)) throw new Error("unexpected advisors output");
  } catch {
    findings = [stdout];
  }
  const ok = out.success && findings.length === 0 && /"results"/.test(stdout);
  if (!ok) {
    console.log(stdout.trim());
    if ("stderr" in out) console.log(new TextDecoder().decode(out.stderr).trim());
  }
  record("supabase db advisors --type=security: no findings", ok);
}

async function main(): Promise<number> {
  await install();
  await staticChecks();

  let server: Awaited<ReturnType<typeof startPostgres>> | undefined;
  let dataDir: string | undefined;
  let adminUrl = Deno.env.get("DATABASE_URL") ?? Deno.env.get("SUPABASE_DB_URL");
  if (!adminUrl) {
    dataDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "starter-test-pg-" });
    await Deno.chmod(dataDir, 0o755);
    const started = performance.now();
    server = await startPostgres({
      dataDir: join(dataDir, "data"),
      port: freePort(),
      ephemeral: true,
    });
    adminUrl = server.url;
    console.log(`embedded Postgres ready in ${Math.round(performance.now() - started)} ms`);
  }
  const template = `starter_template_${Date.now().toString(36)}`;
  try {
    await buildTemplate(adminUrl, template);
    await advisors(withDatabase(adminUrl, template));

    const junitPath = join(PROJECT_ROOT, ".local", `junit-${Date.now()}.xml`);
    await Deno.mkdir(join(PROJECT_ROOT, ".local"), { recursive: true });
    const testRun = await new Deno.Command(deno, {
      args: ["test", "-A", "--no-check", `--junit-path=${junitPath}`, ...Deno.args],
      cwd: PROJECT_ROOT,
      env: { STARTER_TEST_ADMIN_URL: adminUrl, STARTER_TEST_TEMPLATE: template },
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    let counts = { passed: 0, failed: 0 };
    try {
      counts = countJUnit(await Deno.readTextFile(junitPath));
      await Deno.remove(junitPath);
    } catch {
      // No report: deno test itself failed to start.
    }
    if (!testRun.success && counts.failed === 0) counts.failed = 1;
    for (let i = 0; i < counts.passed; i++) results.push({ name: "deno test", ok: true });
    for (let i = 0; i < counts.failed; i++) results.push({ name: "deno test", ok: false });
  } finally {
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
    await admin.end();
    await server?.stop();
    if (dataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main());
