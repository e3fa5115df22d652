/** Shared helpers for the local stack's tests. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../../local/project/mod.ts";

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

/** The body of a gateway problem, after {@link assertGatewayProblem} checked its shape. */
export interface GatewayProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
}

/**
 * Checks that `res` is a gateway problem in the functions' vocabulary: status,
 * `urn:supabase-starter:problem:<snake_case code>`, title, detail, request id
 * (body = header) and CORS headers. Returns the body.
 */
export async function assertGatewayProblem(
  res: Response,
  status: number,
  code?: string,
): Promise<GatewayProblemBody> {
  const text = await res.text();
  const where = `${res.status} ${text}`;
  assert.equal(res.status, status, where);
  assert.equal(res.headers.get("content-type"), "application/problem+json", where);
  assert.equal(res.headers.get("access-control-allow-origin"), "*", where);
  assert.match(res.headers.get("access-control-expose-headers") ?? "", /X-Request-Id/i, where);
  const body = JSON.parse(text) as GatewayProblemBody;
  assert.match(body.code, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, where);
  if (code !== undefined) assert.equal(body.code, code, where);
  assert.equal(body.type, `urn:supabase-starter:problem:${body.code}`, where);
  assert.equal(body.status, status, where);
  assert.ok(typeof body.title === "string" && body.title.length > 0, where);
  assert.ok(typeof body.detail === "string" && body.detail.length > 0, where);
  assert.ok(body.requestId, where);
  assert.equal(res.headers.get("x-request-id"), body.requestId, where);
  return body;
}
