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

/** Milliseconds from spawn to the first 200 of `path` (a GET unless `init` says otherwise). */
export async function coldStart(
  file: string,
  path: string,
  port: number,
  env: Record<string, string>,
  cwd: string,
  init: RequestInit = {},
): Promise<number> {
  const started = performance.now();
  const child = spawnServer(file, port, env, cwd);
  try {
    await waitFor(`http://127.0.0.1:${port}${path}`, init);
    return performance.now() - started;
  } finally {
    await stopChild(child);
  }
}

/** `deno bundle` of `file` (closest to the hosted eszip); null when bundling fails. */
export async function bundle(file: string, cwd: string): Promise<string | null> {
  const out = join(await Deno.makeTempDir({ prefix: "bench-bundle-" }), "bundle.js");
  const res = await new Deno.Command(deno, {
    args: ["bundle", "--quiet", "--platform=deno", "-o", out, file],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  return res.success ? out : null;
}
