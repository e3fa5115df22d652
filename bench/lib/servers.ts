/**
 * HTTP servers of bench:http: each target runs in its own `deno serve` process
 * (plain, or a `deno bundle` output), spawned, checked and stopped here.
 */
import { join } from "node:path";
import { spawnTracked, stopChild } from "./proc.ts";

const deno = Deno.execPath();

/** Spawns `deno serve` on `file` (a module or a bundle) on 127.0.0.1:`port`. */
export function spawnServer(
  file: string,
  port: number,
  env: Record<string, string>,
  cwd: string,
): Deno.ChildProcess {
  return spawnTracked(deno, {
    args: ["serve", "-A", "--quiet", `--port=${port}`, "--host=127.0.0.1", file],
    cwd,
    env,
    stdout: "null",
    stderr: "null",
  });
}

export { stopChild as stopServer };

/**
 * CPU seconds (user + system, all threads) a process has used so far, from
 * /proc (Linux; NaN elsewhere). CPU per request moves much less with machine
 * load than requests per second do: a busy neighbour takes the server's time
 * slices, not the work each request needs.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name: utime and stime are the 12th and 13th
    // (in clock ticks, 100 per second on Linux); they include exited threads.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Polls `url` until it answers 200; returns the body of that answer. */
export async function waitFor(
  url: string,
  init: RequestInit,
  deadlineMs = 30_000,
): Promise<string> {
  const deadline = performance.now() + deadlineMs;
  let last = "no answer";
  while (performance.now() < deadline) {
    try {
      const res = await fetch(url, init);
      const text = await res.text();
      if (res.status === 200) return text;
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${url} did not answer 200 (last: ${last})`);
}

/** One cold start: wall time from spawn to the first 200, and the CPU the server used by then. */
export interface ColdStart {
  ms: number;
  /**
   * CPU milliseconds the server's threads had run when it answered (from
   * /proc/<pid>/task/<tid>/schedstat, nanoseconds; NaN off Linux). Steadier than
   * wall time on a shared machine: load stretches the wait, not the work.
   */
  cpuMs: number;
}

/** Spawns `file`, polls `path` (a GET unless `init` says otherwise) until a 200, stops it. */
export async function coldStart(
  file: string,
  path: string,
  port: number,
  env: Record<string, string>,
  cwd: string,
  init: RequestInit = {},
): Promise<ColdStart> {
  const started = performance.now();
  const child = spawnServer(file, port, env, cwd);
  try {
    await waitFor(`http://127.0.0.1:${port}${path}`, init);
    const ms = performance.now() - started;
    return { ms, cpuMs: await threadsCpuMs(child.pid) };
  } finally {
    await stopChild(child);
  }
}

/** The CPU time of a process's live threads, ms (NaN where /proc has no schedstat). */
async function threadsCpuMs(pid: number): Promise<number> {
  try {
    let ns = 0;
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      const text = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/schedstat`)
        .catch(() => "0");
      ns += Number(text.split(" ")[0]);
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * `deno bundle` of `file` (closest to the hosted eszip); null when bundling fails.
 * One file by default: its dynamic imports are inlined, and the packages they
 * load (postgres.js with its `node:` modules, jose) are parsed, and their `node:`
 * imports loaded, at start. With `split`, dynamic imports stay separate chunks
 * loaded on first use, as the hosted eszip loads them. Either way the returned
 * path ends in `/bundle.js` or `/<entry>.js` inside a fresh temporary folder.
 */
export async function bundle(
  file: string,
  cwd: string,
  split = false,
): Promise<string | null> {
  const dir = await Deno.makeTempDir({ prefix: "bench-bundle-" });
  const out = split
    ? join(dir, file.split("/").at(-1)!.replace(/\.ts$/, ".js"))
    : join(dir, "bundle.js");
  const res = await new Deno.Command(deno, {
    args: split
      ? ["bundle", "--quiet", "--platform=deno", "--code-splitting", "--outdir", dir, file]
      : ["bundle", "--quiet", "--platform=deno", "-o", out, file],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  return res.success ? out : null;
}
