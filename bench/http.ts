/**
 * `deno task bench:http`: warm throughput and latency of the full pipeline
 * against its peers, and cold start against a hello-world function, in one run.
 *
 * Each server runs in its own `deno serve` process; the load generator is wrk
 * (Debian package `wrk`; one thread, 32 connections) so client and server each
 * get one of the two cores. Ratios, not absolute numbers, are the result.
 *
 * Every measurement runs --runs times, interleaved (one of each target per round,
 * the order rotating), and the tables print the median, min-max and n, and
 * ratios of medians; the final table prints the targets with met/missed.
 * Each server's answer is checked before it is measured. Nothing asserts timings.
 * Beside req/s, each server's CPU per request (all its threads, from /proc) is
 * printed: on a shared machine it moves much less with load than req/s does.
 * Servers live in bench/servers/*, helpers in bench/lib/*.
 *
 * Flags: --duration=5 (seconds of wrk per measurement), --warmup=2 (seconds of
 * wrk before each), --runs=3 (warm rounds), --cold-runs=9 (cold-start rounds),
 * --connections=32, --only=warm,cold (default: both).
 */
import { words } from "./lib/args.ts";
import { onInterrupt } from "./lib/proc.ts";
import { table, type Target, targetsTable } from "./lib/report.ts";
import { bundle, coldStart, cpuSeconds, spawnServer, stopServer, waitFor } from "./lib/servers.ts";
import {
  compact,
  fmtRatio,
  fmtSummary,
  pairedRange,
  ratio,
  summarize,
  type Summary,
} from "./lib/stats.ts";
import { wrk } from "./lib/wrk.ts";
import { dirname, join } from "node:path";
import { PROJECT_ROOT } from "../local/project/mod.ts";
import { freePort } from "../tests/_harness/database.ts";
import { makeProject, signToken } from "../tests/_harness/keys.ts";
import { requireTools, WRK } from "./required_tools.ts";

await requireTools("bench:http", [WRK]);

const deno = Deno.execPath();
const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const duration = arg("duration", 5);
const runs = arg("runs", 3);
const coldRuns = arg("cold-runs", 9);
const warmup = arg("warmup", 2);
const connections = arg("connections", 32);

const only = words("only");
const want = (part: string) => only.length === 0 || only.includes(part);

const project = await makeProject({ LOG_LEVEL: "warn" });
const token = await signToken(project.es256, { expiresIn: 3600 });
const body = JSON.stringify({ action: "echo", payload: { message: "hello from wrk" } });
const expected = JSON.stringify({ data: { message: "hello from wrk" } });
const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };

interface Server {
  id: string;
  name: string;
  file: string;
  path: string;
  env?: Record<string, string>;
}

const servers: Server[] = [
  { id: "bare", name: "bare Deno.serve echo", file: "bench/servers/bare_echo.ts", path: "/" },
  {
    id: "limit",
    name: "hand-written contract limit (Deno.serve)",
    file: "bench/servers/contract_limit.ts",
    path: "/",
  },
  {
    id: "api",
    name: "api echo (this starter, ES256 user JWT)",
    file: "supabase/functions/api/index.ts",
    path: "/functions/v1/api",
  },
  {
    id: "api-log",
    name: "api echo, access log on (ACCESS_LOG=on)",
    file: "supabase/functions/api/index.ts",
    path: "/functions/v1/api",
    env: { LOG_LEVEL: "info", ACCESS_LOG: "on" },
  },
  {
    id: "hono",
    name: "Hono + jwk() JWKS + zod-validator",
    file: "bench/servers/hono_jwks.ts",
    path: "/",
  },
  {
    id: "supabase-server",
    name: "@supabase/server withSupabase + zod",
    file: "bench/servers/supabase_server.ts",
    path: "/",
  },
  {
    id: "jose",
    name: "jose jwtVerify every request + zod",
    file: "bench/servers/verify_every_request.ts",
    path: "/",
  },
];

const rotate = <T>(xs: T[], k: number) => xs.map((_, i) => xs[(i + k) % xs.length]!);
const push = (m: Map<string, number[]>, k: string, x: number) => m.set(k, [...(m.get(k) ?? []), x]);

/** One warm measurement: spawn, check the answer, warm up, measure, stop. */
async function warmOnce(s: Server) {
  const port = freePort();
  const child = spawnServer(
    join(PROJECT_ROOT, s.file),
    port,
    { ...project.env, ...s.env },
    PROJECT_ROOT,
  );
  const url = `http://127.0.0.1:${port}${s.path}`;
  try {
    const answer = await waitFor(url, { method: "POST", body, headers });
    if (answer !== expected) throw new Error(`${s.name} answered ${answer}, not ${expected}`);
    if (warmup > 0) await wrk(url, { seconds: warmup, body, headers, connections }); // JIT, token cache
    const cpu0 = await cpuSeconds(child.pid);
    const r = await wrk(url, { seconds: duration, body, headers, connections });
    const cpu1 = await cpuSeconds(child.pid);
    if (r.non2xx > 0 || r.errors > 0) {
      throw new Error(`${s.name}: ${r.non2xx} non-2xx responses, ${r.errors} socket errors`);
    }
    // The server's CPU per answered request (all its threads: JS, HTTP, GC).
    return { ...r, cpuUs: ((cpu1 - cpu0) * 1e6) / (r.rps * duration) };
  } finally {
    await stopServer(child);
  }
}

const rps = new Map<string, number[]>();
const cpu = new Map<string, number[]>();
const p50 = new Map<string, number[]>();
const p99 = new Map<string, number[]>();
const S = (m: Map<string, number[]>, k: string): Summary => summarize(m.get(k) ?? []);
const targets: Target[] = [];

if (want("warm")) {
  console.log(
    `servers: ${deno} serve (deno ${Deno.version.deno})\n` +
      `warm: wrk -t1 -c${connections} -d${duration}s (after ${warmup}s warm-up), POST echo with an ` +
      `ES256 bearer token; ${runs} interleaved rounds; load ${await loadavg()}`,
  );
  for (let r = 0; r < runs; r++) {
    for (const s of rotate(servers, r)) {
      const x = await warmOnce(s);
      push(rps, s.id, x.rps);
      push(cpu, s.id, x.cpuUs);
      push(p50, s.id, x.p50);
      push(p99, s.id, x.p99);
      console.log(
        `round ${r + 1}/${runs}  ${s.name.padEnd(44)} ${compact(x.rps)} req/s, ` +
          `${x.cpuUs.toFixed(1)} µs CPU/request`,
      );
    }
  }
  const api = S(rps, "api");
  console.log();
  const apiCpu = S(cpu, "api");
  table(
    [
      "server",
      "req/s: median (min-max, n)",
      "p50 ms",
      "p99 ms",
      "api / this",
      "server CPU µs/request",
      "api / this, by CPU",
    ],
    servers.map((s) => [
      s.name,
      fmtSummary(S(rps, s.id)),
      S(p50, s.id).median.toFixed(2),
      S(p99, s.id).median.toFixed(2),
      s.id === "api" ? "-" : fmtRatio(ratio(api, S(rps, s.id))),
      fmtSummary(S(cpu, s.id)),
      // Throughput a core would give at that CPU cost: the inverse ratio of CPU.
      s.id === "api" ? "-" : fmtRatio(ratio(S(cpu, s.id), apiCpu)),
    ]),
  );
  const pair = (a: string, b: string) => ({
    ratio: ratio(S(rps, a), S(rps, b)),
    range: pairedRange(rps.get(a) ?? [], rps.get(b) ?? []),
  });
  // By CPU: the other's CPU per request over api's (higher is better for api).
  const pairCpu = (a: string, b: string) => ({
    ratio: ratio(S(cpu, b), S(cpu, a)),
    range: pairedRange(cpu.get(b) ?? [], cpu.get(a) ?? []),
  });
  const log = pair("api-log", "api");
  console.log(
    `\naccess log on / off: ${fmtRatio(log.ratio)} (${log.range.map(fmtRatio).join("-")})`,
  );
  console.log("\napi's ratios (ratio of medians, per-round range), by req/s and by server CPU:");
  table(
    ["api / this", "by req/s", "by CPU per request"],
    [
      ["bare Deno.serve echo", "bare"],
      ["hand-written contract limit", "limit"],
      ["Hono + jwk() JWKS + zod-validator", "hono"],
      ["@supabase/server withSupabase + zod", "supabase-server"],
    ].map(([name, id]) => {
      const a = pair("api", id!);
      const c = pairCpu("api", id!);
      return [
        name!,
        `${fmtRatio(a.ratio)} (${a.range.map(fmtRatio).join("-")})`,
        `${fmtRatio(c.ratio)} (${c.range.map(fmtRatio).join("-")})`,
      ];
    }),
  );
  targets.push(
    {
      what: "warm, api / hand-written contract limit",
      ...pair("api", "limit"),
      op: ">=",
      bound: 0.9,
    },
    { what: "warm, api / bare Deno.serve echo", ...pair("api", "bare"), op: ">=", bound: 0.8 },
    { what: "warm, api / Hono + JWKS + zod-validator", ...pair("api", "hono"), op: ">=", bound: 3 },
    {
      what: "warm by CPU/request, api / contract limit",
      ...pairCpu("api", "limit"),
      op: ">=",
      bound: 0.9,
    },
    {
      what: "warm by CPU/request, api / bare echo",
      ...pairCpu("api", "bare"),
      op: ">=",
      bound: 0.8,
    },
  );
}

if (want("cold")) {
  const [helloBundle, apiBundle, helloSplit, apiSplit] = await Promise.all([
    bundle("bench/servers/hello.ts", PROJECT_ROOT),
    bundle("supabase/functions/api/index.ts", PROJECT_ROOT),
    bundle("bench/servers/hello.ts", PROJECT_ROOT, true),
    bundle("supabase/functions/api/index.ts", PROJECT_ROOT, true),
  ]);
  const removeBundles = async () => {
    for (const f of [helloBundle, apiBundle, helloSplit, apiSplit]) {
      if (f) await Deno.remove(dirname(f), { recursive: true }).catch(() => {});
    }
  };
  const disarm = onInterrupt(removeBundles);
  // "first echo": the first request is an action call with a user token, so the
  // answer also waits for jose (loaded on first use), one ES256 verification and
  // zod; shown beside the targets, which time GET /health as the first request.
  const echo = { method: "POST", body, headers };
  const cold: { id: string; file: string; path: string; init?: RequestInit }[] = [
    { id: "hello", file: "bench/servers/hello.ts", path: "/" },
    { id: "api", file: "supabase/functions/api/index.ts", path: "/functions/v1/api/health" },
    {
      id: "api, first echo",
      file: "supabase/functions/api/index.ts",
      path: "/functions/v1/api",
      init: echo,
    },
    ...(helloBundle && apiBundle
      ? [
        { id: "hello bundled", file: helloBundle, path: "/" },
        { id: "api bundled", file: apiBundle, path: "/functions/v1/api/health" },
        { id: "api bundled, first echo", file: apiBundle, path: "/functions/v1/api", init: echo },
      ]
      : []),
    // Code splitting keeps dynamic imports (postgres.js, jose) out of the start,
    // as the hosted eszip does; the one-file bundle above loads them at start.
    ...(helloSplit && apiSplit
      ? [
        { id: "hello split-bundled", file: helloSplit, path: "/" },
        { id: "api split-bundled", file: apiSplit, path: "/functions/v1/api/health" },
        {
          id: "api split-bundled, first echo",
          file: apiSplit,
          path: "/functions/v1/api",
          init: echo,
        },
      ]
      : []),
  ];
  if (!helloBundle || !apiBundle) {
    console.log("deno bundle failed here: bundled cold start skipped");
  }
  console.log(
    `\ncold start: spawn to first 200 (deno serve), ${coldRuns} interleaved rounds; ` +
      `load ${await loadavg()}`,
  );
  const ms = new Map<string, number[]>();
  const cpuMs = new Map<string, number[]>();
  for (let r = 0; r < coldRuns; r++) {
    for (const c of rotate(cold, r)) {
      const x = await coldStart(c.file, c.path, freePort(), project.env, PROJECT_ROOT, c.init);
      push(ms, c.id, x.ms);
      push(cpuMs, c.id, x.cpuMs);
    }
  }
  table(
    [
      "function",
      "ms: median (min-max, n)",
      "/ hello-world",
      "server CPU ms by the first 200",
      "/ hello-world, by CPU",
    ],
    cold.map((c) => {
      const base = c.id.includes("split-bundled")
        ? "hello split-bundled"
        : c.id.includes("bundled")
        ? "hello bundled"
        : "hello";
      return [
        c.id,
        fmtSummary(S(ms, c.id)),
        c.id === base ? "-" : fmtRatio(ratio(S(ms, c.id), S(ms, base))),
        fmtSummary(S(cpuMs, c.id)),
        c.id === base ? "-" : fmtRatio(ratio(S(cpuMs, c.id), S(cpuMs, base))),
      ];
    }),
  );
  const pairOf = (m: Map<string, number[]>) => (a: string, b: string) =>
    m.has(a) && m.has(b)
      ? { ratio: ratio(S(m, a), S(m, b)), range: pairedRange(m.get(a) ?? [], m.get(b) ?? []) }
      : { ratio: NaN };
  const pair = pairOf(ms);
  const pairCpu = pairOf(cpuMs);
  targets.push(
    { what: "cold start, api / hello (deno serve)", ...pair("api", "hello"), op: "<=", bound: 1.3 },
    {
      what: "cold start, api / hello (bundled)",
      ...pair("api bundled", "hello bundled"),
      op: "<=",
      bound: 1.3,
    },
    {
      what: "cold start, api / hello (bundled, code splitting)",
      ...pair("api split-bundled", "hello split-bundled"),
      op: "<=",
      bound: 1.3,
    },
    {
      what: "cold start by CPU, api / hello (deno serve)",
      ...pairCpu("api", "hello"),
      op: "<=",
      bound: 1.3,
    },
    {
      what: "cold start by CPU, api / hello (bundled)",
      ...pairCpu("api bundled", "hello bundled"),
      op: "<=",
      bound: 1.3,
    },
    {
      what: "cold start by CPU, api / hello (code splitting)",
      ...pairCpu("api split-bundled", "hello split-bundled"),
      op: "<=",
      bound: 1.3,
    },
  );
  disarm();
  await removeBundles();
}

targetsTable("Targets (DESIGN §6)", targets);
console.log(`\nload at the end: ${await loadavg()} (2 cores; ratios move with load)`);

async function loadavg(): Promise<string> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?");
  return text.split(" ").slice(0, 3).join(" ");
}
