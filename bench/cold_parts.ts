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
 *
 * `--breakdown` (with `--rounds`) prints instead where the split-bundled `api`'s
 * start goes, in-process (`deno run` of a small harness, one import and one
 * GET /health each, wall ms, medians): loading and parsing its entry file (the
 * same code wrapped in a function that is never called), evaluating each bundled
 * module (marks inserted at esbuild's `// <module path>` lines; the entry is split
 * at its `defineFunction(` call), and the first request, each against hello-world.
 */
import { flag, num, words } from "./lib/args.ts";
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
const load = async () =>
  (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");
const push = (m: Map<string, number[]>, k: string, x: number) => m.set(k, [...(m.get(k) ?? []), x]);
if (flag("breakdown", false)) {
  await breakdown(rounds);
  Deno.exit(0);
}

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

console.log(`cold start, spawn to first 200, ${rounds} interleaved rounds; load ${await load()}`);

const serve = new Map<string, number[]>();
const bundled = new Map<string, number[]>();
const splitBundled = new Map<string, number[]>();
// The same three, as the server's CPU ms by its first answer.
const serveCpu = new Map<string, number[]>();
const bundledCpu = new Map<string, number[]>();
const splitCpu = new Map<string, number[]>();
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

/** The harness of `--breakdown`: one import and one request, timed in-process. */
function harnessCode(): string {
  return `
const [entry, url] = Deno.args;
const t0 = performance.now();
const mod = await import(entry);
const t1 = performance.now();
const req = new Request(url);
const t2 = performance.now();
const res = await mod.default.fetch(req);
await res.text();
const t3 = performance.now();
console.log(JSON.stringify({
  importMs: t1 - t0, firstMs: t3 - t2, status: res.status, marks: globalThis.__coldMarks ?? [],
}));
`;
}

/** esbuild's line naming the module whose code follows. */
function moduleLine(): RegExp {
  return /^\/\/ (\S+\/\S+\.[cm]?[jt]s)$/;
}

/** A line recording that `label`'s code starts now. */
function mark(label: string): string {
  return `globalThis.__coldMarks.push([${JSON.stringify(label)}, performance.now()]);`;
}

/** The entry with a mark before each bundled module and before its `defineFunction(` call. */
function marked(code: string, entry: string): string {
  const out = ["globalThis.__coldMarks ??= [];"];
  let inEntry = false;
  for (const line of code.split("\n")) {
    const m = line.match(moduleLine());
    if (m) {
      inEntry = m[1] === entry;
      out.push(mark(inEntry ? `${entry}: up to defineFunction (its schemas)` : m[1]!));
    } else if (inEntry && /^var \w+ = defineFunction\(/.test(line)) {
      out.push(mark(`${entry}: defineFunction`));
    } else if (line.startsWith("export {")) out.push(mark("(end)"));
    out.push(line);
  }
  return out.join("\n");
}

/** The entry's code inside a function never called: what loading and parsing it cost. */
function parsedOnly(code: string): string {
  const lines = code.split("\n");
  const imports = lines.filter((l) =>
    /^import ["{*\w]/.test(l) && !l.includes(" from ") ||
    /^import .* from "\.\/[^"]+";$/.test(l)
  );
  const exportAt = lines.findIndex((l) => l.startsWith("export {"));
  const body = lines.slice(0, exportAt === -1 ? lines.length : exportAt)
    .filter((l) => !imports.includes(l));
  return [
    ...imports,
    "export function neverCalled() {",
    ...body,
    "}",
    'export default { fetch: () => new Response("") };',
  ].join("\n");
}

async function breakdown(n: number) {
  const api = { file: "supabase/functions/api/index.ts", url: "http://127.0.0.1/api/health" };
  const hello = { file: "bench/servers/hello.ts", url: "http://127.0.0.1/" };
  const out = await bundle(api.file, PROJECT_ROOT, true);
  if (!out) throw new Error(`deno bundle --code-splitting failed for ${api.file}`);
  const dir = dirname(out);
  const disarmBreakdown = onInterrupt(() => Deno.remove(dir, { recursive: true }));
  try {
    const code = await Deno.readTextFile(out);
    const harness = `${dir}/harness.js`;
    await Deno.writeTextFile(harness, harnessCode());
    await Deno.writeTextFile(`${dir}/marked.js`, marked(code, api.file));
    await Deno.writeTextFile(`${dir}/parsed_only.js`, parsedOnly(code));
    const project = await makeProject({ LOG_LEVEL: "warn" });
    const run = async (entry: string, url: string) => {
      const res = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", harness, entry, url],
        cwd: PROJECT_ROOT,
        env: project.env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(res.stdout).trim();
      if (!res.success || !text) {
        throw new Error(`harness failed on ${entry}: ${new TextDecoder().decode(res.stderr)}`);
      }
      return JSON.parse(text) as {
        importMs: number;
        firstMs: number;
        status: number;
        marks: [string, number][];
      };
    };
    const helloUrl = new URL(hello.file, `file://${PROJECT_ROOT}/`).href;
    const samples = new Map<string, number[]>();
    for (let r = 0; r < n; r++) {
      const h = await run(helloUrl, hello.url);
      push(samples, "hello-world: import", h.importMs);
      push(samples, "hello-world: first request", h.firstMs);
      const p = await run(`file://${dir}/parsed_only.js`, hello.url);
      push(samples, "api entry loaded and parsed, not run: import", p.importMs);
      const a = await run(`file://${dir}/marked.js`, api.url);
      if (a.status !== 200) throw new Error(`api answered ${a.status} to GET /health`);
      push(samples, "api: import (load, parse, evaluate)", a.importMs);
      push(samples, "api: first request (GET /health)", a.firstMs);
      const spent = new Map<string, number>();
      for (let i = 0; i + 1 < a.marks.length; i++) {
        const [label, at] = a.marks[i]!;
        spent.set(label, (spent.get(label) ?? 0) + a.marks[i + 1]![1] - at);
      }
      for (const [label, ms] of spent) push(samples, `evaluate ${label}`, ms);
    }
    const rows = [...samples].map(([k, v]) => [k, summarize(v)] as const);
    const fixed = rows.filter(([k]) => !k.startsWith("evaluate "));
    const evaluated = rows.filter(([k]) => k.startsWith("evaluate "))
      .sort((a, b) => b[1].median - a[1].median);
    const total = evaluated.reduce((t, [, s]) => t + s.median, 0);
    console.log(
      `where the split-bundled api's start goes, in-process, ${n} runs, wall ms; ` +
        `load ${await load()}`,
    );
    table(["what", "ms"], [
      ...fixed.map(([k, s]) => [k, fmtSummary(s)]),
      ["evaluation, all modules (sum of medians)", total.toFixed(2)],
      ...evaluated.slice(0, 10).map(([k, s]) => [k, fmtSummary(s)]),
    ]);
  } finally {
    disarmBreakdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
