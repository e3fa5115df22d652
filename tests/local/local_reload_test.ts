/**
 * Hot reload: a change under supabase/functions restarts only the functions
 * it affects (all of them for `_shared`), new requests reach the new code,
 * and a request in flight on the old process still completes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDevFlags } from "../../local/cli/mod.ts";
import { startStack } from "../../local/stack.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";
import { eventually, tempDir } from "./support/helpers.ts";

// `/slow` answers once the test opens `gate`: it stays in flight across the
// reload however long the reload takes, rather than for a fixed 1.5 s.
const fnSource = (name: string, version: string, gate = "") =>
  `import { SHARED } from "../_shared/version.ts";
export default {
  async fetch(req: Request): Promise<Response> {
    if (new URL(req.url).pathname.endsWith("/slow")) await (await fetch("${gate}")).text();
    return new Response(\`${name} \${SHARED} ${version} \${Deno.pid}\`);
  },
};
`;

Deno.test("hot reload: affected functions only, in-flight requests finish", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const open = Promise.withResolvers<void>();
  await using gate = serve(async () => (await open.promise, new Response("open")));
  using _open = { [Symbol.dispose]: () => open.resolve() }; // before the gate stops
  const functions = join(dir.path, "project", "supabase", "functions");
  await Deno.mkdir(join(functions, "_shared"), { recursive: true });
  for (const name of ["a", "b"]) {
    await Deno.mkdir(join(functions, name));
    await Deno.writeTextFile(join(functions, name, "index.ts"), fnSource(name, "v1", gate.url));
  }
  const shared = join(functions, "_shared", "version.ts");
  await Deno.writeTextFile(shared, `export const SHARED = "s1";\n`);
  await Deno.writeTextFile(
    join(dir.path, "project", "supabase", "config.toml"),
    `[functions.a]\nverify_jwt = false\n[functions.b]\nverify_jwt = false\n` +
      `[functions.c]\nverify_jwt = false\n`,
  );
  const options = parseDevFlags([
    "--workdir",
    join(dir.path, "project"),
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
  const get = async (path: string) => {
    const res = await fetch(`${stack.url}/functions/v1/${path}`);
    const text = await res.text();
    return { status: res.status, words: text.split(" ") };
  };
  try {
    const a1 = await get("a");
    const b1 = await get("b");
    assert.deepEqual(a1.words.slice(0, 3), ["a", "s1", "v1"]);

    const inFlight = get("a/slow");
    // Let the slow request reach the current process before the edit.
    await eventually(
      "slow request in flight",
      () => stack.pool.current("a")!.inflight > 0 ? true : undefined,
    );
    await Deno.writeTextFile(join(functions, "a", "index.ts"), fnSource("a", "v2"));
    const a2 = await eventually("a serves v2", async () => {
      const r = await get("a");
      return r.words[2] === "v2" ? r : undefined;
    });
    assert.notEqual(a2.words[3], a1.words[3], "a runs in a new process");
    open.resolve();
    const slow = await inFlight;
    assert.equal(slow.status, 200, "the in-flight request finished on the old process");
    assert.deepEqual(slow.words.slice(0, 4), ["a", "s1", "v1", a1.words[3]]);
    assert.equal((await get("b")).words[3], b1.words[3], "b was not restarted");

    await Deno.writeTextFile(shared, `export const SHARED = "s2";\n`);
    await eventually("a and b see the _shared change", async () => {
      const [a, b] = [await get("a"), await get("b")];
      return a.words[1] === "s2" && b.words[1] === "s2" ? true : undefined;
    });
    assert.notEqual((await get("b")).words[3], b1.words[3], "b restarted for _shared");

    assert.equal((await get("c")).status, 404);
    await Deno.mkdir(join(functions, "c"));
    await Deno.writeTextFile(join(functions, "c", "index.ts"), fnSource("c", "v1"));
    await eventually(
      "new function c is served",
      async () => (await get("c")).status === 200 ? true : undefined,
    );
  } finally {
    await stack.stop();
  }
});
