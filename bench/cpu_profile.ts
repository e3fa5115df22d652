/**
 * Summarises V8 CPU profiles (`deno run --cpu-prof`): self time by function and
 * by module, the largest first, as a share of the sampled time. Profiles are
 * evidence for where time goes before anything is cut.
 *
 *   deno run -A bench/cpu_profile.ts [--top=25] [--filter=<url substring>] file.cpuprofile...
 */
import { num } from "./lib/args.ts";
import { table } from "./lib/report.ts";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const top = num("top", 25);
const filter = Deno.args.find((a) => a.startsWith("--filter="))?.slice(9);
const files = Deno.args.filter((a) => !a.startsWith("--"));
if (files.length === 0) {
  console.error("usage: bench/cpu_profile.ts [--top=25] [--filter=url] file.cpuprofile...");
  Deno.exit(2);
}

/** Shortens a module URL to what identifies it: the package, or the path below the project. */
function moduleOf(url: string): string {
  if (!url) return "(native / runtime)";
  const npm = url.match(/node_modules\/(?:\.deno\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith("ext:")) return url.replace(/^ext:/, "runtime ");
  return url.replace(/^file:\/\/.*?\/(supabase|bench|tests|local)\//, "$1/");
}

const byFn = new Map<string, number>();
const byModule = new Map<string, number>();
let total = 0;
for (const file of files) {
  const p = JSON.parse(await Deno.readTextFile(file)) as Profile;
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const f = nodes.get(id)!.callFrame;
    total += dt;
    if (filter && !f.url.includes(filter)) return;
    const name = `${f.functionName || "(anonymous)"} ${moduleOf(f.url)}:${f.lineNumber + 1}`;
    byFn.set(name, (byFn.get(name) ?? 0) + dt);
    byModule.set(moduleOf(f.url), (byModule.get(moduleOf(f.url)) ?? 0) + dt);
  });
}

const rows = (m: Map<string, number>) =>
  [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => [
    k,
    (us / 1000).toFixed(1),
    `${((100 * us) / total).toFixed(1)}%`,
  ]);
console.log(`${files.length} profile(s), ${(total / 1000).toFixed(0)} ms sampled\n`);
table(["self time by function", "ms", "share"], rows(byFn));
console.log();
table(["self time by module", "ms", "share"], rows(byModule));
