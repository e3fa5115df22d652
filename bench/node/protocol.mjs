// The child side of bench/lib/proc.ts's line protocol, for Node children
// (bench/workers/protocol.ts is the same for Deno children).
import { createInterface } from "node:readline";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const clock = () => performance.timeOrigin + performance.now();

export function emit(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
}

/** Resolves `go`/`stop` waiters as the parent's command lines arrive on stdin. */
export function commands() {
  const seen = new Set();
  const waiters = new Map();
  const fire = (line) => {
    seen.add(line);
    for (const w of waiters.get(line) ?? []) w();
    waiters.delete(line);
  };
  createInterface({ input: process.stdin })
    .on("line", (line) => fire(line.trim()))
    .on("close", () => fire("stop"));
  return {
    next(command) {
      if (seen.has(command)) return Promise.resolve();
      return new Promise((r) => waiters.set(command, [...(waiters.get(command) ?? []), r]));
    },
  };
}

/** Counts handler calls; reports progress at most every `everyMs` while it moves. */
export function handlerCounter(everyMs = 50) {
  let count = 0;
  let first = 0;
  let last = 0;
  let reported = 0;
  const timer = setInterval(() => {
    if (count !== reported) {
      reported = count;
      emit({ type: "progress", count });
    }
  }, everyMs);
  return {
    hit() {
      const at = clock();
      if (count++ === 0) first = at;
      last = at;
    },
    hits(k) {
      const at = clock();
      if (count === 0) first = at;
      count += k;
      last = at;
    },
    finish(extra = {}) {
      clearInterval(timer);
      emit({ type: "result", count, first, last, ...extra });
    },
  };
}

/** Runs `main`, reporting any failure as a protocol error; exits when done. */
export function runChild(main) {
  main().then(
    () => process.exit(0),
    (error) => {
      emit({ type: "error", message: String(error?.stack ?? error) });
      process.exit(1);
    },
  );
}

export const config = () => JSON.parse(process.argv[2]);

/**
 * Imports a package from bench/node/node_modules. The specifier is not a literal
 * so that `deno check .` in the project does not try to resolve Node-only
 * packages that Deno has no entry for.
 */
export const load = (name) => import(name);
