/**
 * `deno task bench:pipeline`: the per-request CPU cost of the handlers of
 * bench:http, called in-process with no socket (µs of process CPU per request, interleaved
 * rounds, the order rotating), so the pipeline's own cost is not hidden behind
 * the HTTP server's. `Request` construction is measured on its own and
 * subtracted. Run it under `--cpu-prof` to see where the time goes:
 *
 *   deno run -A --cpu-prof --cpu-prof-dir=/tmp/prof bench/pipeline_inproc.ts --only=api
 *   deno run -A bench/cpu_profile.ts /tmp/prof/*.cpuprofile
 *
 * Flags: --n=50000 (requests per measurement), --rounds=5, --only=bare,limit,api,api-log.
 * Reporting only: nothing asserts timings.
 */
import process from "node:process";
import { num, words } from "./lib/args.ts";
import { table } from "./lib/report.ts";
import { fmtRatio, summarize } from "./lib/stats.ts";
import { makeProject, signToken } from "../tests/_harness/keys.ts";

const n = num("n", 50_000);
const rounds = num("rounds", 5);
const only = words("only");

const project = await makeProject({ LOG_LEVEL: "warn" });
for (const [k, v] of Object.entries(project.env)) Deno.env.set(k, v);
const token = await signToken(project.es256, { expiresIn: 3600 });
const body = JSON.stringify({ action: "echo", payload: { message: "hello from wrk" } });
const expected = JSON.stringify({ data: { message: "hello from wrk" } });
const init = {
  method: "POST",
  body,
  // As on the wire: a server's Request carries the Content-Length it was sent with
  // (without it, body.ts would take its streaming path, which wire requests never do).
  headers: {
    "content-type": "application/json",
    "content-length": String(new TextEncoder().encode(body).byteLength),
    authorization: `Bearer ${token}`,
  },
};

type Handler = { fetch(req: Request): Promise<Response> | Response };
const load = async (file: string, env: Record<string, string> = {}): Promise<Handler> => {
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  const mod = await import(`${file}?${crypto.randomUUID()}`);
  for (const k of Object.keys(env)) {
    if (project.env[k] === undefined) Deno.env.delete(k);
    else Deno.env.set(k, project.env[k]);
  }
  return mod.default as Handler;
};

// A sink that drops lines: the access log's cost is building the line, not the terminal.
const quiet = { log: console.log };
const targets = [
  { id: "bare", url: "http://x/", handler: await load("./servers/bare_echo.ts") },
  { id: "limit", url: "http://x/", handler: await load("./servers/contract_limit.ts") },
  {
    id: "api",
    url: "http://x/functions/v1/api",
    handler: await load("../supabase/functions/api/index.ts"),
  },
  {
    id: "api-log",
    url: "http://x/functions/v1/api",
    handler: await load("../supabase/functions/api/index.ts", {
      LOG_LEVEL: "info",
      ACCESS_LOG: "on",
    }),
  },
].filter((t) => only.length === 0 || only.includes(t.id));

for (const t of targets) {
  const text = await (await t.handler.fetch(new Request(t.url, init))).text();
  if (text !== expected) throw new Error(`${t.id} answered ${text}`);
}

/**
 * µs of CPU per request (this process's user + system time, so a busy machine
 * stretches the wait, not the figure): build the Request, call the handler, read
 * the answer's body.
 */
async function measure(t: (typeof targets)[number] | null): Promise<number> {
  const started = cpuMicros();
  for (let i = 0; i < n; i++) {
    const req = new Request(t?.url ?? "http://x/", init);
    if (t) await (await t.handler.fetch(req)).arrayBuffer();
  }
  return (cpuMicros() - started) / n;
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

const samples = new Map<string, number[]>();
const push = (k: string, x: number) => samples.set(k, [...(samples.get(k) ?? []), x]);
// The access log writes a line per request: keep it off the terminal while measuring.
console.log = () => {};
try {
  for (let r = 0; r < rounds; r++) {
    push("new Request", await measure(null));
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length]!;
      push(t.id, await measure(t));
    }
  }
} finally {
  console.log = quiet.log;
}
const req = summarize(samples.get("new Request")!).median;
const cost = (id: string) => summarize(samples.get(id) ?? []).median - req;
console.log(
  `in-process, ${n} requests x ${rounds} rounds, process CPU time; Request construction ${
    req.toFixed(2)
  } µs`,
);
table(
  ["handler", "CPU µs/request (minus Request)", "bare / this", "limit / this"],
  targets.map((t) => [
    t.id,
    cost(t.id).toFixed(2),
    samples.has("bare") ? fmtRatio(cost("bare") / cost(t.id)) : "-",
    samples.has("limit") ? fmtRatio(cost("limit") / cost(t.id)) : "-",
  ]),
);
