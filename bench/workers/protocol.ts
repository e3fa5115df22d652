/**
 * The child side of bench/lib/proc.ts's line protocol, for Deno children.
 * (bench/node/protocol.mjs is the same for Node children.)
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const clock = (): number => performance.timeOrigin + performance.now();

/** Writes one protocol message. */
export function emit(msg: Record<string, unknown>): void {
  console.log(JSON.stringify(msg));
}

/** Resolves `go`/`stop` waiters as the parent's command lines arrive on stdin. */
export function commands(): { next(command: "go" | "stop"): Promise<void> } {
  const seen = new Set<string>();
  const waiters = new Map<string, (() => void)[]>();
  (async () => {
    let buf = "";
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        seen.add(line);
        for (const w of waiters.get(line) ?? []) w();
        waiters.delete(line);
      }
    }
    // stdin closed: the parent is gone or done; treat as stop.
    seen.add("stop");
    for (const w of waiters.get("stop") ?? []) w();
  })();
  return {
    next(command) {
      if (seen.has(command)) return Promise.resolve();
      return new Promise((r) => waiters.set(command, [...(waiters.get(command) ?? []), r]));
    },
  };
}

/**
 * Counts handler calls: the first and last call's time, and a progress message
 * at most every `everyMs` while the count moves (so the parent knows when all
 * workers together have run N jobs, without polling the database).
 */
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
    hits(k: number) {
      const at = clock();
      if (count === 0) first = at;
      count += k;
      last = at;
    },
    finish(extra: Record<string, unknown> = {}) {
      clearInterval(timer);
      emit({ type: "result", count, first, last, ...extra });
    },
  };
}
