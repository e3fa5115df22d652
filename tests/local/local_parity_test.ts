/**
 * Production parity of `deno task dev` (docs/local-stack.md, "Same rules as
 * deployed"): each level of the CLI's import map precedence, the hosted
 * runtime's permissions, `EdgeRuntime.waitUntil` and the worker events on
 * shutdown, and config.toml's [edge_runtime] (policy `per_worker` keeps a
 * worker, `oneshot` gives each request its own). Real function processes on
 * the fixture project tests/fixtures/parity_project.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { discoverFunctions, importMapFlags, resolveImportMap } from "../../local/functions/mod.ts";
import { ConfigError, loadProjectConfig, parseProjectConfig } from "../../local/project/mod.ts";
import { fixtureCopy, fixtureProject, startFixtureStack } from "./support/fixture_stack.ts";

const PARITY = fixtureProject("parity_project");
const FLAG_MAP = join(PARITY, "flag_map.json");

/** Function -> the import map level that must win for it. */
const PRECEDENCE: [fn: string, level: string, source: string][] = [
  ["im-config", "config_toml", "config.toml import_map"], // over its deno.json and import_map.json
  ["im-denojson", "deno_json", "deno.json"], // over deno.jsonc and import_map.json
  ["im-denojsonc", "deno_jsonc", "deno.jsonc"], // over import_map.json
  ["im-importmap", "import_map_json", "import_map.json"], // over the global one
  ["im-global", "global", "functions/import_map.json"],
];

Deno.test("import maps: the CLI's precedence, level by level (resolution)", async () => {
  const config = await loadProjectConfig(PARITY);
  const specs = await discoverFunctions(PARITY, config);
  for (const [fn, , source] of PRECEDENCE) {
    assert.equal(specs.find((s) => s.name === fn)?.importMap?.source, source, fn);
  }
  const flagged = await discoverFunctions(PARITY, config, { importMapFlag: FLAG_MAP });
  assert.ok(flagged.every((s) => s.importMap?.source === "--import-map"));
  // deno.json(c) is a whole config; an import map is only that; none: no config at all.
  assert.deepEqual(importMapFlags({ file: "/f/deno.json", source: "deno.json" }), [
    "--config",
    "/f/deno.json",
    "--no-lock",
  ]);
  assert.deepEqual(
    importMapFlags({ file: "/f/import_map.json", source: "import_map.json" }),
    ["--no-config", "--no-lock", "--import-map", "/f/import_map.json"],
  );
  assert.deepEqual(importMapFlags(null), ["--no-config", "--no-lock"]);
});

Deno.test("import maps: a configured map that is missing is one clear error", async () => {
  const supabaseDir = join(PARITY, "supabase");
  await assert.rejects(
    resolveImportMap({
      supabaseDir,
      functionDir: join(supabaseDir, "functions", "x"),
      configured: "./functions/x/nope.json",
      name: "x",
    }),
    /\[functions\.x\] import_map = "\.\/functions\/x\/nope\.json": no such file/,
  );
  await assert.rejects(
    resolveImportMap({ supabaseDir, functionDir: supabaseDir, flag: "/nope.json", name: "x" }),
    /--import-map \/nope\.json: no such file/,
  );
});

Deno.test("import maps: each level answers from the function process", async (t) => {
  await t.step("config.toml, deno.json, deno.jsonc, import_map.json, global", async () => {
    await using s = await startFixtureStack(PARITY);
    for (const [fn, level] of PRECEDENCE) {
      const res = await fetch(`${s.fn}/${fn}`);
      assert.equal(await res.text(), level, `${fn}: ${s.logs.slice(-10).join("\n")}`);
    }
  });
  await t.step("--import-map wins over everything", async () => {
    await using s = await startFixtureStack(PARITY, ["--import-map", FLAG_MAP]);
    for (const fn of ["im-flag", "im-config", "im-denojson", "im-global"]) {
      const res = await fetch(`${s.fn}/${fn}`);
      assert.equal(await res.text(), "flag", fn);
    }
  });
});

/** op -> allowed?, and for refusals the words the message must have. */
const SANDBOX: [op: string, allowed: boolean, message?: RegExp][] = [
  ["read-own", true],
  ["read-shared", true],
  ["env", true],
  ["net", true],
  ["write-tmp", true],
  ["read-sibling", false, /read access to ".*events\/index\.ts".*hosted Edge Runtime/],
  ["read-outside", false, /read access to ".*config\.toml".*read only its own files/],
  ["read-etc", false, /read access to "\/etc\/passwd".*hosted Edge Runtime/],
  // This machine's /tmp is not the platform's: only the process's own scratch folder is.
  ["read-host-tmp", false, /read access to ".*starter-probe-.*".*hosted Edge Runtime/],
  ["write-own", false, /write access to ".*written\.txt".*write only to \/tmp/],
  ["write-home", false, /write access to "\/root\/sandbox-fixture\.txt".*write only to \/tmp/],
  ["command", false, /Deno\.Command\("true"\).*does not allow subprocesses/],
  // node:child_process is refused by Deno's own permission check (its words).
  ["node-spawn", false, /Requires run access to "true"/],
];

Deno.test("permissions: what the hosted runtime grants, and clear refusals of the rest", async () => {
  await using s = await startFixtureStack(PARITY);
  const probe = await Deno.makeTempFile({ dir: "/tmp", prefix: "starter-probe-" });
  try {
    for (const [op, allowed, message] of SANDBOX) {
      const res = await fetch(`${s.fn}/sandbox?op=${op}&path=${encodeURIComponent(probe)}`);
      const body = await res.json();
      assert.equal(body.ok, allowed, `${op}: ${JSON.stringify(body)}`);
      if (!allowed) {
        assert.equal(res.status, 403, op);
        assert.equal(body.name, "NotCapable", `${op}: ${JSON.stringify(body)}`);
        assert.match(body.message, message!, op);
        if (op !== "node-spawn") {
          assert.doesNotMatch(body.message, /run again with the --allow/, op);
        }
      }
    }
  } finally {
    await Deno.remove(probe);
  }
});

Deno.test("events: shutdown fires beforeunload (termination), finishes waitUntil, then unload", async () => {
  const s = await startFixtureStack(PARITY);
  let stopped = false;
  try {
    const res = await fetch(`${s.fn}/events?wait=300`);
    assert.equal(await res.text(), "ok");
    await s[Symbol.asyncDispose]();
    stopped = true;
    const lines = s.logs.filter((l) => l.startsWith("[events] "));
    const at = (text: string) => lines.findIndex((l) => l.includes(text));
    const before = at(`event beforeunload {"reason":"termination"}`);
    const done = at("waitUntil done");
    const unload = at("event unload");
    assert.ok(before >= 0 && done > before && unload > done, lines.join("\n"));
  } finally {
    if (!stopped) await s[Symbol.asyncDispose]();
  }
});

Deno.test("[edge_runtime]: both policies parse, unknown ones are refused; secrets are read", () => {
  assert.equal(parseProjectConfig("", "c.toml").edgeRuntime.policy, "per_worker");
  const oneshot = parseProjectConfig(`[edge_runtime]\npolicy = "oneshot"\n`, "c.toml");
  assert.equal(oneshot.edgeRuntime.policy, "oneshot");
  assert.throws(
    () => parseProjectConfig(`[edge_runtime]\npolicy = "pooled"\n`, "c.toml"),
    (e: unknown) =>
      e instanceof ConfigError && /policy must be "per_worker" or "oneshot"/.test(e.message),
  );
  const config = parseProjectConfig(
    `[edge_runtime]\npolicy = "per_worker"\n[edge_runtime.secrets]\nA = "env(HOST_A)"\nB = "b"\n`,
    "c.toml",
  );
  assert.deepEqual(config.edgeRuntime, {
    policy: "per_worker",
    secrets: { A: "env(HOST_A)", B: "b" },
  });
});

/** A project with only the `worker` fixture, under `policy`, with two secrets. */
const policyProject = (policy: string) =>
  fixtureCopy(
    "parity_project",
    ["worker"],
    `[edge_runtime]\npolicy = "${policy}"\n` +
      `[edge_runtime.secrets]\nFROM_HOST = "env(PARITY_HOST_VALUE)"\nLITERAL = "literal"`,
    `[functions.worker]\nverify_jwt = false\n`,
  );

Deno.test("[edge_runtime.secrets] reach the function process; env() is read from the host", async () => {
  await using project = await policyProject("per_worker");
  await using s = await startFixtureStack(project.path, [], { PARITY_HOST_VALUE: "from-host" });
  for (const [name, value] of [["FROM_HOST", "from-host"], ["LITERAL", "literal"]]) {
    const body = await (await fetch(`${s.fn}/worker?env=${name}`)).json();
    assert.equal(body.env, value, name);
  }
});

Deno.test("gateway: traceparent and tracestate reach the function unchanged", async () => {
  await using project = await policyProject("per_worker");
  await using s = await startFixtureStack(project.path);
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  const res = await fetch(`${s.fn}/worker`, { headers: { traceparent, tracestate } });
  const body = await res.json();
  assert.equal(body.traceparent, traceparent);
  assert.equal(body.tracestate, tracestate);
});

Deno.test("[edge_runtime] policy: per_worker serves requests from one worker", async () => {
  await using project = await policyProject("per_worker");
  await using s = await startFixtureStack(project.path);
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await (await fetch(`${s.fn}/worker`)).json()).worker);
  const [one, two] = await Promise.all([1, 2].map(() => fetch(`${s.fn}/worker`)));
  ids.push((await one!.json()).worker, (await two!.json()).worker);
  assert.equal(new Set(ids).size, 1, ids.join(", "));
  assert.ok(!s.logs.some((l) => /event (beforeunload|unload)/.test(l)), s.logs.join("\n"));
});

Deno.test("[edge_runtime] policy: oneshot gives each request a fresh worker, retired after it (early_drop)", async (t) => {
  await using project = await policyProject("oneshot");
  await using s = await startFixtureStack(project.path);
  assert.ok(s.logs.some((l) => /policy = "oneshot": a new worker per request/.test(l)));
  const worker = async (query = "") => {
    const res = await fetch(`${s.fn}/worker${query}`);
    assert.equal(res.status, 200, s.logs.slice(-10).join("\n"));
    return (await res.json()).worker as string;
  };
  const first = await worker("?wait=200");
  await t.step("the next request gets another worker", async () => {
    const second = await worker();
    assert.notEqual(second, first);
  });
  await t.step(
    "the first one got beforeunload (early_drop), finished waitUntil, then unload",
    async () => {
      const unload = await s.waitForLine(new RegExp(`^\\[worker\\] ${first} event unload$`));
      const mine = s.logs.filter((l) => l.includes(first));
      const at = (text: string) => mine.findIndex((l) => l.endsWith(text));
      const before = at(`event beforeunload {"reason":"early_drop"}`);
      const done = at("waitUntil done");
      assert.ok(before >= 0 && done > before && mine.indexOf(unload) > done, mine.join("\n"));
    },
  );
  await t.step("concurrent requests each get their own worker", async () => {
    const ids = await Promise.all([1, 2, 3].map(() => worker()));
    assert.equal(new Set([...ids, first]).size, 4, ids.join(", "));
  });
  await t.step("retiring is a normal end: no crash lines", () => {
    assert.ok(
      !s.logs.some((l) => /crashed|exited \(exit code|restarting/.test(l)),
      s.logs.join("\n"),
    );
  });
});

Deno.test("[edge_runtime.secrets]: env() read from the host, .env and --env-file win, unset skipped", async () => {
  const { functionEnv } = await import("../../local/functions/mod.ts");
  const { createLocalKeys } = await import("../../local/project/mod.ts");
  const logs: string[] = [];
  const env = await functionEnv({
    supabaseUrl: "http://127.0.0.1:1",
    dbUrl: "postgresql://x",
    keys: await createLocalKeys(),
    workdir: PARITY,
    envFiles: [],
    secrets: { FROM_HOST: "env(HOST_A)", LITERAL: "b", MISSING: "env(NOPE)", SUPABASE_X: "y" },
    hostEnv: (name) => (name === "HOST_A" ? "a" : undefined),
    log: (line) => logs.push(line),
  });
  assert.equal(env.FROM_HOST, "a");
  assert.equal(env.LITERAL, "b");
  assert.equal(env.MISSING, undefined);
  assert.equal(env.SUPABASE_X, undefined);
  assert.ok(logs.some((l) => /MISSING = "env\(NOPE\)": NOPE is not set; skipped/.test(l)));
  assert.ok(logs.some((l) => /skipping SUPABASE_X/.test(l)));
});
