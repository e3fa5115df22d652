/** Runs `deno task dev` as a child process and reads its progress lines. */
import { PROJECT_ROOT } from "../../../local/project/mod.ts";

/** A running `deno task dev`. */
export interface DevProcess {
  child: Deno.ChildProcess;
  /** Every line printed so far (stdout and stderr). */
  lines: string[];
  /** Resolves with the "ready in N s" figure, in seconds; rejects if the process exits first. */
  ready: Promise<number>;
  /** Milliseconds from spawn to the ready line. */
  spawnToReadyMs: Promise<number>;
  /** Resolves once every process holding its output has exited (all lines are in `lines`). */
  ended: Promise<void>;
}

/**
 * Spawns `deno task dev <args>` from the project root. `detached` gives it its
 * own process group, so a test can signal the group as a terminal or a
 * supervisor would.
 */
export function spawnDev(
  args: string[],
  env: Record<string, string> = {},
  { detached = false } = {},
): DevProcess {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "dev", ...args],
    cwd: PROJECT_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached,
  }).spawn();
  const lines: string[] = [];
  const ready = Promise.withResolvers<number>();
  const spawnToReady = Promise.withResolvers<number>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const match = / ready in ([\d.]+) s$/.exec(line);
        if (match) {
          spawnToReady.resolve(performance.now() - started);
          ready.resolve(Number(match[1]));
        }
      }
    }
  };
  const ended = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {
    const error = new Error(`deno task dev exited before ready:\n${lines.join("\n")}`);
    ready.reject(error);
    spawnToReady.reject(error);
  });
  ready.promise.catch(() => {});
  spawnToReady.promise.catch(() => {});
  return { child, lines, ready: ready.promise, spawnToReadyMs: spawnToReady.promise, ended };
}

/** Every descendant pid of `pid` (from /proc), for orphan checks. */
export async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(entry.name), ppid);
    } catch { /* exited meanwhile */ }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

/** True while /proc/<pid> exists (and is not a zombie). */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Stops a `deno task dev` and everything under it, however far it got (for `finally`). */
export async function killTree(dev: DevProcess): Promise<void> {
  const tree = await descendants(dev.child.pid);
  const devPid = tree[0];
  if (devPid !== undefined) {
    try {
      Deno.kill(devPid, "SIGTERM"); // it stops its functions and Postgres itself
    } catch { /* already gone */ }
    for (let i = 0; i < 50 && await alive(devPid); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  for (const pid of [...tree, dev.child.pid]) {
    try {
      if (await alive(pid)) Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
  await dev.child.status;
}
