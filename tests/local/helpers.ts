/** Shared helpers for the local stack's tests. */
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/postgres.ts";

/** The fixture project the local stack tests serve. */
export const FIXTURE_WORKDIR = join(PROJECT_ROOT, "tests", "fixtures", "local_project");

/** A temp folder that Postgres (another OS user) can reach; removed on dispose. */
export async function tempDir(
  prefix = "local-stack-",
): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ dir: "/tmp", prefix });
  await Deno.chmod(path, 0o755);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/**
 * Polls `check` until it returns a value other than undefined (or fails after
 * `ms`). The deadline only turns a hang into a failure, so it is generous: a
 * function process cold-starting on a loaded 2-core machine takes seconds.
 */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** True when 127.0.0.1:`port` can be bound (nothing listens there). */
export function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Runs `deno run -A local/<script>` to completion and returns its exit code and output. */
export async function runScript(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(PROJECT_ROOT, "local", script), ...args],
    cwd: PROJECT_ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** A loopback HTTP server that records the JSON bodies it receives. */
export function jsonSink(status = 204) {
  const received: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push(await req.json().catch(() => null));
    return new Response(status === 204 ? null : "ok", { status });
  });
  return {
    received,
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** `deno task dev` arguments for the fixture project in `dataDir` on `port`. */
export function fixtureArgs(dataDir: string, port: number): string[] {
  return ["--workdir", FIXTURE_WORKDIR, "--data-dir", dataDir, "--port", String(port)];
}
