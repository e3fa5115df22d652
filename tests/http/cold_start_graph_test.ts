/**
 * Cold start is module loading: a function pays for every module it imports
 * before its first answer. These checks keep the shipped defaults cheap: `api`
 * (HTTP only) imports the HTTP entry point of the shared module, never the whole
 * of it (queue, webhook delivery, breakers' registry, events, workflows), and by
 * default no access-log line is written per request.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readEnv } from "../../supabase/functions/_shared/mod.ts";

async function localModules(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"))
    .map((s) => s.slice(s.indexOf("/supabase/functions/") + "/supabase/functions/".length));
}

// http/problem.ts maps every layer's errors, so it imports their error classes:
// two leaf modules that import only core (no engine, no SQL, no zod).
const LEAF_ERRORS = ["_shared/events/errors.ts", "_shared/workflows/errors.ts"];

Deno.test("cold start: api loads only the HTTP part of _shared", async () => {
  const modules = await localModules("supabase/functions/api/index.ts");
  assert.ok(modules.includes("_shared/http/define_function.ts"), modules.join("\n"));
  const heavy = modules.filter((m) =>
    m === "_shared/mod.ts" || m.startsWith("_shared/queue/jobs/") ||
    m === "_shared/queue/worker.ts" || m.startsWith("_shared/events/") ||
    m.startsWith("_shared/workflows/") || m === "_shared/resilience/breaker/registry.ts"
  ).filter((m) => !LEAF_ERRORS.includes(m));
  assert.deepEqual(heavy, [], "api must not import these at start");
});

Deno.test("cold start: the whole shared module does load the queue (the check above can fail)", async () => {
  const modules = await localModules("supabase/functions/queue-worker/index.ts");
  assert.ok(modules.includes("_shared/queue/jobs/webhook.ts"), modules.join("\n"));
});

Deno.test("defaults: no access-log line per request unless ACCESS_LOG asks for one", () => {
  const env = (vars: Record<string, string>) => readEnv((k) => vars[k]);
  assert.equal(env({}).logLevel, "info");
  assert.equal(env({}).accessLogSample, 0);
  assert.equal(env({ ACCESS_LOG: "on" }).accessLogSample, 1);
  assert.equal(env({ ACCESS_LOG: "0.01" }).accessLogSample, 0.01);
  for (const bad of ["yes", "2", "-0.5", "NaN"]) {
    assert.throws(() => env({ ACCESS_LOG: bad }), /ACCESS_LOG/, bad);
  }
});
