/**
 * Child processes of the benches, and their clean-up.
 *
 * Queue peers run as children that speak a line protocol: each prints JSON
 * lines on stdout (`{"type":"ready"}`, `{"type":"progress","count":n}`,
 * `{"type":"result",...}`, `{"type":"error","message":...}`) and reads the
 * commands `go` and `stop` on stdin. Every child is registered so that an
 * interrupted bench (Ctrl-C, an exception) still ends them.
 */

const live = new Set<Deno.ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
let hooked = false;

/** Runs `fn` (e.g. stop Postgres, remove a temp dir) if the bench is interrupted. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  hookExit();
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch { /* already gone */ }
    }
  };
  globalThis.addEventListener("unload", killAll);
  Deno.addSignalListener("SIGINT", async () => {
    killAll();
    const timeout = new Promise((r) => setTimeout(r, 10_000));
    await Promise.race([Promise.allSettled(cleanups.map((f) => f())), timeout]);
    Deno.exit(130);
  });
}

/** Spawns `cmd` and registers it for clean-up. */
export function spawnTracked(cmd: string, options: Deno.CommandOptions): Deno.ChildProcess {
  hookExit();
  const child = new Deno.Command(cmd, options).spawn();
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild(child: Deno.ChildProcess, graceMs = 3000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, graceMs);
  await child.status;
  clearTimeout(timer);
}

/** A message from a protocol child. */
export type Message =
  | { type: "ready" }
  | { type: "progress"; count: number }
  | { type: "result"; [k: string]: unknown }
  | { type: "error"; message: string };

/** A child speaking the line protocol. */
export class ProtocolChild {
  readonly child: Deno.ChildProcess;
  readonly name: string;
  count = 0;
  result: Record<string, unknown> | null = null;
  error: string | null = null;
  #stderr = "";
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiters: (() => void)[] = [];
  #ready = false;
  readonly done: Promise<void>;

  constructor(name: string, cmd: string, args: string[], options: Deno.CommandOptions = {}) {
    this.name = name;
    this.child = spawnTracked(cmd, {
      ...options,
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    this.#writer = this.child.stdin.getWriter();
    const out = this.#read(this.child.stdout, (line) => this.#onLine(line));
    const err = this.#read(this.child.stderr, (line) => {
      if (this.#stderr.length < 8000) this.#stderr += line + "\n";
    });
    this.done = Promise.all([out, err, this.child.status]).then(([, , status]) => {
      if (!this.result && !this.error) {
        this.error = `exited with code ${status.code} before a result\n${this.#stderr.trim()}`;
      }
      this.#wake();
    });
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    if (buf) onLine(buf);
  }

  #onLine(line: string) {
    if (!line.startsWith("{")) return; // stray library output
    let msg: Message;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.type === "ready") this.#ready = true;
    else if (msg.type === "progress") this.count = msg.count;
    else if (msg.type === "result") {
      this.result = msg;
      if (typeof msg.count === "number") this.count = msg.count;
    } else if (msg.type === "error") this.error = msg.message;
    this.#wake();
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves on the next message (or exit). */
  changed(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }

  get ready(): boolean {
    return this.#ready;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Sends a command line; a child that already exited is ignored. */
  async send(command: "go" | "stop"): Promise<void> {
    try {
      await this.#writer.write(new TextEncoder().encode(command + "\n"));
    } catch { /* exited */ }
  }

  async close(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* exited */ }
    await stopChild(this.child);
    await this.done;
  }
}

/** Resolves once `cond()` holds, re-checking on every message of any child. */
export async function until(
  children: ProtocolChild[],
  cond: () => boolean,
  deadlineMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (!cond()) {
    const failed = children.find((c) => c.error);
    if (failed) throw new Error(`${failed.name}: ${failed.error}`);
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      ...children.map((c) => c.changed()),
      new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, 1000)))),
    ]);
    clearTimeout(timer);
  }
}
