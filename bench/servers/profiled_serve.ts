/**
 * Serves a function's default `fetch` on 127.0.0.1 for a fixed time, then exits
 * cleanly so `--cpu-prof` writes its profile: the way to profile a handler under
 * real HTTP load (the in-process bench:pipeline cannot see what the runtime does
 * around a handler: reading the request, preparing and writing the response).
 *
 *   deno run -A --cpu-prof --cpu-prof-dir=/tmp/prof bench/servers/profiled_serve.ts \
 *     supabase/functions/api/index.ts 8123 12 &
 *   wrk -t1 -c32 -d8s -s post.lua http://127.0.0.1:8123/functions/v1/api
 *   deno run -A bench/cpu_profile.ts /tmp/prof/*.cpuprofile
 *
 * Arguments: the module (its default export has `fetch`), the port, the seconds to serve.
 */
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [file, port, seconds] = Deno.args;
if (!file || !port || !seconds) {
  console.error("usage: profiled_serve.ts <module> <port> <seconds>");
  Deno.exit(2);
}
const mod = await import(pathToFileURL(resolve(file)).href);
const server = Deno.serve(
  { port: Number(port), hostname: "127.0.0.1", onListen() {} },
  mod.default.fetch,
);
setTimeout(async () => {
  await server.shutdown();
  Deno.exit(0);
}, Number(seconds) * 1000);
