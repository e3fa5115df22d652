/**
 * Benches that need an external program (bench:http needs wrk, bench:queue node and npm) say what is
 * missing and how to install it, and exit non-zero before starting anything.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { missingTools, type RequiredTool } from "../../bench/required_tools.ts";

const BENCHES: {
  file: string;
  args: string[];
  /** Stand-ins put on the otherwise empty PATH. */
  present?: string[];
  missing: string[];
  hints: RegExp[];
}[] = [
  {
    file: "http.ts",
    args: ["--duration=1", "--runs=1"],
    missing: ["wrk"],
    hints: [/apt-get install wrk/, /brew install wrk/],
  },
  {
    file: "queue.ts",
    args: ["--n=10", "--rounds=1"],
    missing: ["npm"],
    hints: [/apt-get install nodejs npm/, /brew install node/],
  },
  {
    // npm is there, Node is not: Deno puts its own `node` shim first on PATH, which
    // must not pass for Node (the peers would run under Deno, not their runtime).
    file: "queue.ts",
    args: ["--n=10", "--rounds=1"],
    present: ["npm"],
    missing: ["node"],
    hints: [/only Deno's node shim/, /apt-get install nodejs npm/],
  },
];

for (const bench of BENCHES) {
  Deno.test(
    `bench/${bench.file} without ${
      bench.missing.join(", ")
    } on PATH: install hint, exit 1, nothing started`,
    async () => {
      const emptyBin = await Deno.makeTempDir({ prefix: "starter-nopath-" });
      try {
        for (const tool of bench.present ?? []) {
          await Deno.writeTextFile(join(emptyBin, tool), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        }
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", join(PROJECT_ROOT, "bench", bench.file), ...bench.args],
          cwd: PROJECT_ROOT,
          env: { PATH: emptyBin },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 1, stdout + stderr);
        for (const tool of bench.missing) {
          assert.match(stderr, new RegExp(`\`${tool}\` is not on PATH`));
        }
        for (const hint of bench.hints) assert.match(stderr, hint);
        assert.doesNotMatch(stderr, /Uncaught|\n\s+at /, "no stack trace");
        // Each bench prints its header before it starts the first server or database.
        assert.equal(stdout, "", "nothing was started");
      } finally {
        await Deno.remove(emptyBin, { recursive: true });
      }
    },
  );
}

Deno.test("missingTools: every PATH form", async () => {
  const root = await Deno.makeTempDir({ prefix: "starter-path-" });
  const dir = async (name: string, files: Record<string, number | "dir"> = {}) => {
    const path = join(root, name);
    await Deno.mkdir(path);
    for (const [file, mode] of Object.entries(files)) {
      if (mode === "dir") await Deno.mkdir(join(path, file));
      else await Deno.writeTextFile(join(path, file), "#!/bin/sh\n", { mode });
    }
    return path;
  };
  try {
    const empty = await dir("empty");
    const runnable = await dir("runnable", { wrk: 0o755 });
    const ownerOnly = await dir("owner-only", { wrk: 0o700 });
    const notExecutable = await dir("not-executable", { wrk: 0o644 });
    const aDirectory = await dir("a-directory", { wrk: "dir" });
    const other = await dir("other", { curl: 0o755 });
    const wrk: RequiredTool = { command: "wrk", install: "apt-get install wrk" };
    const cases: [string, string, boolean][] = [
      ["empty PATH", "", false],
      ["only empty entries", "::", false],
      ["a folder without it", empty, false],
      ["executable", runnable, true],
      ["executable by its owner only", ownerOnly, true],
      ["not executable", notExecutable, false],
      ["a directory of that name", aDirectory, false],
      ["another tool only", other, false],
      ["found in a later entry", `${empty}:${other}:${runnable}`, true],
      ["empty entries around it", `::${runnable}:`, true],
      ["a folder that does not exist", join(root, "missing"), false],
    ];
    for (const [name, path, found] of cases) {
      const missing = await missingTools([wrk], path);
      assert.deepEqual(missing, found ? [] : [wrk], name);
    }
    const both = await missingTools([wrk, { command: "curl", install: "x" }], other);
    assert.deepEqual(both.map((t) => t.command), ["wrk"], "reports each missing tool");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
