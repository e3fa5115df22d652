/**
 * `deno task bench:http`: warm throughput and latency of the full pipeline
 * against its peers, and cold start against a hello-world function, in one run.
 *
 * Each server runs in its own `deno serve` process; the load generator is wrk
 * (Debian package `wrk`; one thread, 32 connections) so client and server each
 * get one of the two cores. Ratios, not absolute numbers, are the result.
 *
 * Flags: --duration=5 (seconds per target), --runs=7 (cold starts per target).
 */
import { join } from "node:path";
import { PROJECT_ROOT } from "../local/postgres.ts";
import { freePort } from "../tests/_harness/database.ts";
import { makeProject, signToken } from "../tests/_harness/keys.ts";
import { requireTools, WRK } from "./required_tools.ts";

await requireTools("bench:http", [WRK]);

const deno = Deno.execPath();
const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const duration = arg("duration", 5);
const runs = arg("runs", 7);

const project = await makeProject({ LOG_LEVEL: "warn" });
const token = await signToken(project.es256, { expiresIn: 3600 });
const body = JSON.stringify({ action: "echo", payload: { message: "hello from wrk" } });

interface Target {
  name: string;
  file: string;
  path: string;
  env?: Record<string, string>;
}

const targets: Target[] = [
  { name: "bare Deno.serve echo", file: "bench/servers/bare_echo.ts", path: "/" },
  {
    name: "api echo (this starter, ES256 user JWT)",
    file: "supabase/functions/api/index.ts",
    path: "/functions/v1/api",
  },
  {
    name: "api echo, access log on (LOG_LEVEL=info)",
    file: "supabase/functions/api/index.ts",
    path: "/functions/v1/api",
    env: { LOG_LEVEL: "info" },
  },
  {
    name: "@supabase/server withSupabase + zod",
    file: "bench/servers/supabase_server.ts",
    path: "/",
  },
  {
    name: "jose jwtVerify every request + zod",
    file: "bench/servers/verify_every_request.ts",
    path: "/",
  },
];

function spawnServer(file: string, port: number, env: Record<string, string> = {}) {
  return new Deno.Command(deno, {
    args: ["serve", "-A", "--quiet", `--port=${port}`, "--host=127.0.0.1", file],
    cwd: PROJECT_ROOT,
    env: { ...project.env, ...env },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function stop(child: Deno.ChildProcess) {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  await child.status;
}

async function waitFor(url: string, init: RequestInit, deadlineMs = 20_000): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline) {
    try {
      const res = await fetch(url, init);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${url} did not answer 200`);
}

async function wrk(url: string, seconds: number) {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\n` +
      `wrk.headers["Content-Type"] = "application/json"\n` +
      `wrk.headers["Authorization"] = "Bearer ${token}"\n`,
  );
  try {
    const out = await new Deno.Command("wrk", {
      args: ["-t1", "-c32", `-d${seconds}s`, "--latency", "-s", script, url],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
    const ms = (p: string) => {
      const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(text);
      if (!m) return NaN;
      return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
    };
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
    return { rps, p50: ms("50"), p99: ms("99"), non2xx };
  } finally {
    await Deno.remove(script);
  }
}

async function throughput() {
  const rows: { name: string; rps: number; p50: number; p99: number }[] = [];
  for (const t of targets) {
    const port = freePort();
    const child = spawnServer(t.file, port, t.env);
    const url = `http://127.0.0.1:${port}${t.path}`;
    try {
      await waitFor(url, {
        method: "POST",
        body,
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      });
      await wrk(url, 2); // warm-up: JIT, token cache
      const r = await wrk(url, duration);
      if (r.non2xx > 0) throw new Error(`${t.name}: ${r.non2xx} non-2xx responses`);
      rows.push({ name: t.name, ...r });
      console.log(
        `${t.name.padEnd(44)} ${r.rps.toFixed(0).padStart(8)} req/s  p50 ${
          r.p50.toFixed(2)
        } ms  p99 ${r.p99.toFixed(2)} ms`,
      );
    } finally {
      await stop(child);
    }
  }
  return rows;
}

async function coldStart(file: string, path: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = freePort();
    const started = performance.now();
    const child = spawnServer(file, port);
    try {
      await waitFor(`http://127.0.0.1:${port}${path}`, {});
      samples.push(performance.now() - started);
    } finally {
      await stop(child);
    }
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

async function bundle(file: string): Promise<string | null> {
  const out = join(await Deno.makeTempDir(), "bundle.js");
  const res = await new Deno.Command(deno, {
    args: ["bundle", "--quiet", "--platform=deno", "-o", out, file],
    cwd: PROJECT_ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  return res.success ? out : null;
}

console.log(`warm throughput (wrk -t1 -c32 -d${duration}s, POST echo with an ES256 bearer token)`);
const rows = await throughput();
const rate = (n: string) => rows.find((r) => r.name.startsWith(n))!.rps;
const api = rate("api echo (this");
console.log(
  `\n  api / bare Deno.serve          = ${(api / rate("bare")).toFixed(2)}x  (target >= 0.8x)`,
);
console.log(
  `  api / @supabase/server         = ${(api / rate("@supabase")).toFixed(2)}x  (target >= 1.5x)`,
);
console.log(`  api / jose-verify-every-request = ${(api / rate("jose")).toFixed(2)}x`);
console.log(`  api with access log / without   = ${(rate("api echo, access") / api).toFixed(2)}x`);

console.log(`\ncold start (spawn to first 200, median of ${runs})`);
const hello = await coldStart("bench/servers/hello.ts", "/");
const apiCold = await coldStart("supabase/functions/api/index.ts", "/functions/v1/api/health");
console.log(
  `  (a) deno serve: hello ${hello.toFixed(0)} ms, api ${apiCold.toFixed(0)} ms = ${
    (apiCold / hello).toFixed(2)
  }x  (target <= 1.3x)`,
);
const [helloBundle, apiBundle] = await Promise.all([
  bundle("bench/servers/hello.ts"),
  bundle("supabase/functions/api/index.ts"),
]);
if (helloBundle && apiBundle) {
  const hb = await coldStart(helloBundle, "/");
  const ab = await coldStart(apiBundle, "/functions/v1/api/health");
  console.log(
    `  (b) bundled:    hello ${hb.toFixed(0)} ms, api ${ab.toFixed(0)} ms = ${
      (ab / hb).toFixed(2)
    }x  (target <= 1.3x)`,
  );
} else {
  console.log("  (b) bundled: deno bundle failed here; skipped");
}
