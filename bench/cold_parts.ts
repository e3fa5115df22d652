/**
 * `deno task bench:cold`: what each part of a function costs at cold start.
 * Spawn to first 200 with `deno serve`, and the same for a `deno bundle` output
 * (closest to the hosted eszip) in one file and with code splitting (dynamic
 * imports stay lazy, as in the eszip), each file against hello-world, interleaved
 * rounds (the order rotates). The parts are in bench/servers/cold/: zod alone,
 * zod/mini alone, the shared core with no zod, `api` importing the whole shared
 * module, `api` importing only `_shared/http/mod.ts` with zod or zod/mini, and
 * the shipped `api`. Reporting only: nothing asserts timings.
 *
 * Flags: --rounds=9, --only=zod,zod-mini,core,api-whole,api-http-zod,api-http-mini,api
 * (hello-world always runs).
 */
import { num, words } from "./lib/args.ts";
import { onInterrupt } from "./lib/proc.ts";
import { table } from "./lib/report.ts";
import { bundle, type ColdStart, coldStart } from "./lib/servers.ts";
import { fmtRatio, fmtSummary, ratio, summarize } from "./lib/stats.ts";
import { dirname } from "node:path";
import { PROJECT_ROOT } from "../local/project/mod.ts";
import { freePort } from "../tests/_harness/database.ts";
import { makeProject } from "../tests/_harness/keys.ts";

const rounds = num("rounds", 9);
const only = words("only");

const parts = [
  { id: "hello", name: "hello-world", file: "bench/servers/hello.ts", path: "/" },
  { id: "zod", name: "zod alone", file: "bench/servers/cold/zod.ts", path: "/" },
  { id: "zod-mini", name: "zod/mini alone", file: "bench/servers/cold/zod_mini.ts", path: "/" },
  {
    id: "core",
    name: "shared core (http/mod.ts), no zod",
    file: "bench/servers/cold/core_only.ts",
    path: "/health",
  },
  {
    id: "api-whole",
    name: "api: _shared/mod.ts + zod",
    file: "bench/servers/cold/api_whole_shared.ts",
    path: "/health",
  },
  {
    id: "api-http-zod",
    name: "api: _shared/http/mod.ts + zod",
    file: "bench/servers/cold/api_http_zod.ts",
    path: "/health",
  },
  {
    id: "api-http-mini",
    name: "api: _shared/http/mod.ts + zod/mini",
    file: "bench/servers/cold/api_http_mini.ts",
    path: "/health",
  },
  { id: "api", name: "api as shipped", file: "supabase/functions/api/index.ts", path: "/health" },
].filter((p) => only.length === 0 || p.id === "hello" || only.includes(p.id));

const project = await makeProject({ LOG_LEVEL: "warn" });
const bundles = new Map<string, string>();
const splits = new Map<string, string>();
const removeBundles = async () => {
  for (const f of [...bundles.values(), ...splits.values()]) {
    await Deno.remove(dirname(f), { recursive: true }).catch(() => {});
  }
};
const disarm = onInterrupt(removeBundles);
for (const p of parts) {
  const out = await bundle(p.file, PROJECT_ROOT);
  if (out) bundles.set(p.id, out);
  else console.log(`deno bundle failed for ${p.file}: its bundled row is skipped`);
  const split = await bundle(p.file, PROJECT_ROOT, true);
  if (split) splits.set(p.id, split);
}

const load = async () =>
  (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");
console.log(`cold start, spawn to first 200, ${rounds} interleaved rounds; load ${await load()}`);

const serve = new Map<string, number[]>();
const bundled = new Map<string, number[]>();
const splitBundled = new Map<string, number[]>();
// The same three, as the server's CPU ms by its first answer.
const serveCpu = new Map<string, number[]>();
const bundledCpu = new Map<string, number[]>();
const splitCpu = new Map<string, number[]>();
const push = (m: Map<string, number[]>, k: string, x: number) => m.set(k, [...(m.get(k) ?? []), x]);
const record = (m: Map<string, number[]>, cpu: Map<string, number[]>, k: string, x: ColdStart) => {
  push(m, k, x.ms);
  push(cpu, k, x.cpuMs);
};
for (let r = 0; r < rounds; r++) {
  const order = parts.map((_, i) => parts[(i + r) % parts.length]!);
  for (const p of order) {
    const start = (file: string) => coldStart(file, p.path, freePort(), project.env, PROJECT_ROOT);
    record(serve, serveCpu, p.id, await start(p.file));
    const b = bundles.get(p.id);
    if (b) record(bundled, bundledCpu, p.id, await start(b));
    const c = splits.get(p.id);
    if (c) record(splitBundled, splitCpu, p.id, await start(c));
  }
}
disarm();
await removeBundles();

const S = (m: Map<string, number[]>, k: string) => summarize(m.get(k) ?? []);
// Ratios of medians, and of minimums: on a loaded machine noise only adds time,
// so the fastest start is the steadier estimate of what a part costs.
const cells = (m: Map<string, number[]>, id: string) => {
  const x = S(m, id);
  const h = S(m, "hello");
  return [
    fmtSummary(x),
    id === "hello" ? "-" : `${fmtRatio(ratio(x, h))} / ${fmtRatio(x.min / h.min)}`,
  ];
};
table(
  [
    "part",
    "deno serve ms",
    "/ hello (median / min)",
    "bundled ms",
    "/ hello",
    "split-bundled ms",
    "/ hello",
  ],
  parts.map((p) => [
    p.name,
    ...cells(serve, p.id),
    ...cells(bundled, p.id),
    ...cells(splitBundled, p.id),
  ]),
);
console.log("\nThe same starts as the server's CPU ms by its first answer (all live threads):");
table(
  [
    "part",
    "deno serve CPU ms",
    "/ hello (median / min)",
    "bundled CPU ms",
    "/ hello",
    "split-bundled CPU ms",
    "/ hello",
  ],
  parts.map((p) => [
    p.name,
    ...cells(serveCpu, p.id),
    ...cells(bundledCpu, p.id),
    ...cells(splitCpu, p.id),
  ]),
);
console.log(`\nload at the end: ${await load()} (2 cores; ratios move with load)`);
