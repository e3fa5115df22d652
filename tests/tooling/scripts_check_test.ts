/**
 * `deno task check` and the static checks it shares with `deno task test`, run
 * on small temp projects: each kind of defect fails exactly the check meant to
 * catch it, and the command ends with a pass/fail line and a matching exit code.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { runStaticChecks } from "../../scripts/static_checks.ts";

const FUNCTION = `import { greeting } from "../../../lib/greeting.ts";\n\n` +
  `export default { fetch: () => new Response(greeting) };\n`;

/** A minimal project that passes every check; `change` breaks one file. */
async function tempProject(change: Record<string, string> = {}): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "starter-check-" });
  const files: Record<string, string> = {
    "deno.json": JSON.stringify({ imports: { "greeting": "./lib/greeting.ts" } }, null, 2) + "\n",
    "lib/greeting.ts": `export const greeting: string = "hello";\n`,
    "supabase/functions/hello/index.ts": FUNCTION,
    ...change,
  };
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(root, dirname(path)), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return root;
}

const ALL = [
  "deno fmt --check",
  "deno lint",
  "deno check (project)",
  "deno check hello standalone",
];

const cases: { name: string; change: Record<string, string>; failing: string[] }[] = [
  { name: "a clean project", change: {}, failing: [] },
  {
    name: "an unformatted file",
    change: { "lib/greeting.ts": `export const   greeting: string =  "hello"\n` },
    failing: ["deno fmt --check"],
  },
  {
    name: "a lint finding",
    change: { "lib/greeting.ts": `export const greeting: string = "hello";\nvar unused = 1;\n` },
    failing: ["deno lint"],
  },
  {
    // In a file no function imports: only the project-wide check sees it.
    name: "a type error",
    change: { "lib/count.ts": `export const count: number = "one";\n` },
    failing: ["deno check (project)"],
  },
  {
    // Resolves through the project's import map, which a deployed function does not have.
    name: "a function that needs the project config",
    change: {
      "supabase/functions/hello/index.ts": `import { greeting } from "greeting";\n\n` +
        `export default { fetch: () => new Response(greeting) };\n`,
    },
    failing: ["deno check hello standalone"],
  },
  {
    // The function's own deno.json (as `supabase functions new` writes it) is its import map.
    name: "a function whose own deno.json maps its import",
    change: {
      "supabase/functions/hello/index.ts": `import { greeting } from "greeting";\n\n` +
        `export default { fetch: () => new Response(greeting) };\n`,
      "supabase/functions/hello/deno.json": JSON.stringify(
        {
          imports: { greeting: "../../../lib/greeting.ts" },
        },
        null,
        2,
      ) + "\n",
    },
    failing: [],
  },
  {
    // config.toml's import_map wins over the function's deno.json, as in the CLI.
    name: "a config.toml import_map that lacks the function's import",
    change: {
      "supabase/functions/hello/index.ts": `import { greeting } from "greeting";\n\n` +
        `export default { fetch: () => new Response(greeting) };\n`,
      "supabase/functions/hello/deno.json": JSON.stringify(
        {
          imports: { greeting: "../../../lib/greeting.ts" },
        },
        null,
        2,
      ) + "\n",
      "supabase/functions/hello/other.json": JSON.stringify({ imports: {} }, null, 2) + "\n",
      "supabase/config.toml": `[functions.hello]\nimport_map = "./functions/hello/other.json"\n`,
    },
    failing: ["deno check hello standalone"],
  },
];

for (const c of cases) {
  Deno.test(`static checks: ${c.name} fails ${c.failing.join(", ") || "nothing"}`, async () => {
    const root = await tempProject(c.change);
    try {
      const reported: string[] = [];
      const results = await runStaticChecks(root, (r) => reported.push(r.name));
      assert.deepEqual(results.map((r) => r.name), ALL);
      assert.deepEqual(reported, ALL, "every check is reported as it finishes");
      assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.name), c.failing);
      for (const r of results.filter((r) => !r.ok)) assert.notEqual(r.output, "", r.name);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

async function check(root: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(PROJECT_ROOT, "scripts", "check.ts"), `--root=${root}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test("deno task check: an unformatted file exits 1 with a final fail line", async () => {
  const root = await tempProject({ "lib/greeting.ts": `export const greeting: string =  "hi"\n` });
  try {
    const { code, stdout, stderr } = await check(root);
    assert.equal(code, 1, stdout + stderr);
    const lines = stdout.trim().split("\n");
    assert.equal(lines.at(-1), "static checks: 3 passed, 1 failed");
    assert.ok(lines.includes("FAIL deno fmt --check"), stdout);
    assert.match(stdout, /greeting\.ts/, "the fmt diff names the file");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task check: a clean project exits 0 with a final pass line", async () => {
  const root = await tempProject();
  try {
    const { code, stdout, stderr } = await check(root);
    assert.equal(code, 0, stdout + stderr);
    assert.equal(stdout.trim().split("\n").at(-1), "static checks: 4 passed, 0 failed");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("deno task check: a bad flag or a missing project is one clear line, exit 2", async () => {
  const missing = join(await Deno.makeTempDir({ prefix: "starter-check-" }), "nothing-here");
  try {
    for (const args of [["--nope"], [`--root=${missing}`]]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(PROJECT_ROOT, "scripts", "check.ts"), ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 2, stderr);
      assert.match(stderr, /^deno task check: /);
      assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    }
  } finally {
    await Deno.remove(dirname(missing), { recursive: true });
  }
});

Deno.test("deno.json: every task runs a script that exists", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(PROJECT_ROOT, "deno.json")));
  const tasks = Object.entries(config.tasks as Record<string, string>);
  assert.ok(tasks.some(([name]) => name === "check"), "a check task is defined");
  for (const [name, command] of tasks) {
    const script = /^deno run (?:-\S+ )*(\S+\.ts)\b/.exec(command)?.[1];
    assert.ok(script, `task ${name}: expected "deno run ... <file>.ts", got ${command}`);
    const stat = await Deno.stat(join(PROJECT_ROOT, script)).catch(() => null);
    assert.ok(stat?.isFile, `task ${name} runs ${script}, which does not exist`);
  }
});
