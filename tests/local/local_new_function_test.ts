/**
 * A function made by the real Supabase CLI (`npx supabase@3 functions new`)
 * and one made by `deno task new`, each in a copy of this project, served by a
 * real `deno task dev` with no edit. The CLI's template imports
 * `jsr:@supabase/functions-js`; where JSR cannot be reached (as on our build
 * machines) the stack must say so in one line naming that import, and the
 * test proves that line; where it can, the function must answer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { killTree, spawnDev } from "./support/dev_process.ts";
import { eventually, tempDir } from "./support/helpers.ts";

/** A copy of this project's supabase/ folder (config, functions, migrations). */
async function projectCopy(): Promise<AsyncDisposable & { path: string }> {
  const dir = await tempDir("local-new-");
  const out = await new Deno.Command("cp", {
    args: ["-r", join(PROJECT_ROOT, "supabase"), dir.path],
  }).output();
  assert.ok(out.success, "cp -r supabase");
  await Deno.remove(join(dir.path, "supabase", ".temp"), { recursive: true }).catch(() => {});
  return dir;
}

async function run(cmd: string, args: string[], cwd: string) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

const newTask = (args: string[]) =>
  run(Deno.execPath(), ["task", "--quiet", "new", ...args], PROJECT_ROOT);

async function hello(url: string, apikey: string): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { apikey, "content-type": "application/json" },
    body: JSON.stringify({ name: "Functions" }),
  });
}

Deno.test("new functions: the CLI's and deno task new's both run under deno task dev unedited", async () => {
  await using project = await projectCopy();
  await using db = await freshDatabase();
  const cli = await run("npx", ["-y", "supabase@3", "functions", "new", "hello-cli"], project.path);
  assert.equal(cli.code, 0, cli.text);
  const cliDenoJson = await Deno.readTextFile(
    join(project.path, "supabase", "functions", "hello-cli", "deno.json"),
  );
  const created = await newTask(["hello-npm", "--workdir", project.path]);
  assert.equal(created.code, 0, created.text);
  const dataDir = join(project.path, "state");
  const port = freePort();
  const dev = spawnDev(
    ["--workdir", project.path, "--data-dir", dataDir, "--port", String(port), "--no-cron"],
    { SUPABASE_DB_URL: db.url },
  );
  try {
    await dev.ready;
    const keys = JSON.parse(await Deno.readTextFile(join(dataDir, "keys.json")));
    const apikey: string = keys.publishableKeys.default;
    const fn = `http://127.0.0.1:${port}/functions/v1`;

    const npm = await hello(`${fn}/hello-npm`, apikey);
    assert.equal(npm.status, 200, dev.lines.slice(-20).join("\n"));
    assert.deepEqual(await npm.json(), { message: "Hello Functions!" });

    const res = await hello(`${fn}/hello-cli`, apikey);
    if (res.status === 200) {
      // JSR reachable: the CLI's own template answers as it is.
      assert.deepEqual(await res.json(), { message: "Hello Functions!" });
    } else {
      const body = await res.json();
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.code, "function_unavailable");
      assert.match(cliDenoJson, /"jsr:@supabase\/functions-js/);
      const said = await eventually(
        "the unreachable-import line",
        () => dev.lines.find((l) => l.includes(`function "hello-cli" cannot load`)),
      );
      assert.match(
        said,
        /^\S+ \[hello-cli\] function "hello-cli" cannot load jsr:@supabase\/functions-js \(imported at hello-cli\/index\.ts:\d+:\d+\): jsr\.io could not be reached from this machine; use an npm: specifier in the function's deno\.json \(deno task new <name> writes one\)$/,
      );
      // One line, not a stack trace: the function's next line is the start failure.
      // (Only its own lines: the stack logs other things in between, in any order.)
      const own = dev.lines.filter((l) => l.includes("[hello-cli]"));
      const next = await eventually("the start failure line", () => {
        const lines = dev.lines.filter((l) => l.includes("[hello-cli]"));
        return lines[lines.indexOf(said) + 1];
      });
      assert.match(
        next,
        /\[hello-cli\] failed to start: its module failed to load/,
        own.join("\n"),
      );
    }
  } finally {
    await killTree(dev);
  }
});

Deno.test("deno task new: refuses bad and taken names with one clear line", async () => {
  await using project = await projectCopy();
  const cases: [args: string[], error: RegExp][] = [
    [["_shared"], /invalid function name "_shared": start with a letter/],
    [["1abc"], /invalid function name "1abc"/],
    [["a/b"], /invalid function name "a\/b"/],
    [["a".repeat(64)], /at most 63 characters/],
    [["api"], /function "api" already exists/],
    [[], /usage: deno task new <name>/],
  ];
  for (const [args, error] of cases) {
    const out = await newTask([...args, "--workdir", project.path]);
    assert.equal(out.code, 1, `${args}: ${out.text}`);
    assert.match(out.text.trim(), error);
    assert.equal(out.text.trim().split("\n").length, 1, out.text);
  }
  // A config.toml block without a folder is taken too.
  const config = join(project.path, "supabase", "config.toml");
  await Deno.writeTextFile(config, "\n[functions.ghost]\nverify_jwt = false\n", { append: true });
  const ghost = await newTask(["ghost", "--workdir", project.path]);
  assert.match(ghost.text, /config\.toml already has a \[functions\.ghost\] block/);
});
