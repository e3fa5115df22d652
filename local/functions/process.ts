/**
 * One function running in its own Deno process (local/functions/host.ts) on a
 * private loopback port. Tracks requests in flight so a hot reload can let
 * them finish on the old process while new ones go to the new process, charges
 * them the process's CPU time (cpu_limit.ts) and, under `policy = "oneshot"`,
 * retires the process once its one request is answered.
 */
import { join } from "node:path";
import { waitAtMost } from "../common/mod.ts";
import type { EdgeRuntimePolicy, FunctionLimits } from "../project/mod.ts";
import { type ChargedRequest, CPU_SAMPLING_AVAILABLE, CpuWatch } from "./cpu_limit.ts";
import type { ServedFunction } from "./registry.ts";
import { IMPORT_FAILED, READY_MARKER, STOPPING_MARKER } from "./host.ts";
import {
  BEFOREUNLOAD_AT,
  type HostLimits,
  LIMIT_EXIT,
  LIMIT_MARKER,
  RETIRING_MARKER,
} from "./host_limits.ts";
import { type HostCommand, hostCommandLine } from "./host_runtime.ts";
import { importMapFlags } from "./import_map.ts";
import { permissionFlags } from "./sandbox.ts";

const HOST = join(import.meta.dirname!, "host.ts");

/** Lifecycle of a function process. */
export type ProcessState = "starting" | "ready" | "failed" | "crashed" | "stopped";

/** A hosted-runtime limit that ended a worker (the `beforeunload` reason it carries). */
export type LimitReason = "memory" | "wall_clock" | "cpu";

/** Why a limit ended a worker: the reason and the line the log got. */
export interface LimitEnd {
  reason: LimitReason;
  message: string;
  /** Nothing worth logging (an idle worker past its wall clock). */
  quiet: boolean;
}

/** How to spawn function processes. */
export interface SpawnOptions {
  env: Record<string, string>;
  cwd: string;
  /** The hosted runtime's limits (config.toml `[local.limits]`, else the platform's). */
  limits: FunctionLimits;
  /** config.toml `[edge_runtime] policy`: one process per function, or one per request. */
  policy: EdgeRuntimePolicy;
  log: (line: string) => void;
}

/** V8 reports a heap it could not grow with one of these (then a dump, then it aborts). */
const V8_OUT_OF_MEMORY =
  /^<--- Last few GCs --->|Reached heap limit|JavaScript heap out of memory|Fatal JavaScript out of memory|Fatal process out of memory/;

/** The `deno run` arguments of one function process (import map, permissions, memory cap). */
export function functionArgs(
  spec: ServedFunction,
  limits: FunctionLimits,
  scratchDir: string,
): string[] {
  const host: HostLimits = {
    memoryMb: limits.memoryMb,
    wallClockMs: limits.wallClockMs,
    cpuMsPerRequest: limits.cpuMsPerRequest,
    cpuEnforcedByGateway: CPU_SAMPLING_AVAILABLE,
  };
  return [
    "run",
    "--quiet",
    ...importMapFlags(spec.importMap),
    ...permissionFlags({
      functionDir: spec.dir,
      entrypoint: spec.entrypoint,
      sharedDirs: spec.sharedDirs,
      scratchDir,
    }),
    // V8's own cap on the heap; the host samples heap + external against the same limit.
    `--v8-flags=--max-old-space-size=${limits.memoryMb}`,
    HOST,
    spec.name,
    spec.entrypoint,
    JSON.stringify(host),
  ];
}

/** The process exited before it listened (module threw at import, bad entrypoint). */
class FunctionStartError extends Error {
  constructor(readonly functionName: string, readonly output: string) {
    super(`function "${functionName}" failed to start`);
    this.name = "FunctionStartError";
  }
}

/** A running (or failed) function process. */
export class FunctionProcess {
  state: ProcessState = "starting";
  port: number | null = null;
  inflight = 0;
  readonly ready: Promise<void>;
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resolves once the exit is fully handled (its last lines read, its state final). */
  readonly ended: Promise<void>;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #cpu: CpuWatch | null;
  readonly #options: SpawnOptions;
  #limit: LimitEnd | null = null;
  /** Told to retire itself (oneshot, after its request): it exits once its work is done. */
  #selfRetiring = false;
  readonly #tail: string[] = [];
  #idle: (() => void)[] = [];
  /** Near its wall clock: new requests should go to a new process. */
  retiring = false;

  constructor(readonly spec: ServedFunction, options: SpawnOptions) {
    this.#options = options;
    // The process's /tmp: private, so it cannot read what else this machine keeps in /tmp.
    const scratchDir = Deno.makeTempDirSync({ prefix: `starter-fn-${spec.name}-` });
    this.#child = new Deno.Command(Deno.execPath(), {
      args: functionArgs(spec, options.limits, scratchDir),
      cwd: options.cwd,
      env: { ...options.env, TMPDIR: scratchDir, TMP: scratchDir, TEMP: scratchDir },
      clearEnv: true,
      stdin: "piped", // closed when the gateway exits: the host then exits too
      stdout: "piped",
      stderr: "piped",
      // Its own process group: a Ctrl-C reaches the dev server, which stops functions in order.
      detached: true,
    }).spawn();
    this.exited = this.#child.status;
    this.#stdin = this.#child.stdin.getWriter();
    this.#stdin.closed.catch(() => {}); // a write after exit fails; never unhandled
    const cleanUp = () => Deno.remove(scratchDir, { recursive: true }).catch(() => {});
    this.exited.then(cleanUp, cleanUp);
    let onReady!: () => void;
    let onFail!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => [onReady, onFail] = [res, rej]);
    this.ready.catch(() => {}); // observed by callers; never an unhandled rejection
    const prefix = `[${spec.name}] `;
    let stopRequested = false;
    let outOfMemory = false;
    const onLine = (line: string) => {
      if (line === STOPPING_MARKER) {
        stopRequested = true;
        return;
      }
      if (line === RETIRING_MARKER) {
        this.retiring = true;
        return;
      }
      if (line.startsWith(LIMIT_MARKER)) {
        const limit: LimitEnd = JSON.parse(line.slice(LIMIT_MARKER.length));
        this.#limit ??= limit;
        this.retiring = true;
        if (!limit.quiet) options.log(prefix + limit.message);
        return;
      }
      if (outOfMemory) return; // V8's stack dump after the line below says nothing more
      if (V8_OUT_OF_MEMORY.test(line)) {
        outOfMemory = true;
        const message = `function "${spec.name}" exceeded the memory limit (V8 heap capped at ` +
          `${options.limits.memoryMb} MB): worker ended, as the hosted runtime ends it`;
        this.#limit ??= { reason: "memory", message, quiet: false };
        this.retiring = true;
        options.log(prefix + message);
        return;
      }
      if (line.startsWith(READY_MARKER)) {
        this.port = Number(line.slice(READY_MARKER.length));
        this.state = "ready";
        onReady();
        return;
      }
      this.#tail.push(line);
      if (this.#tail.length > 30) this.#tail.shift();
      options.log(prefix + line);
    };
    const pumps = [this.#child.stdout, this.#child.stderr].map((s) => pumpLines(s, onLine));
    this.exited.then(() => this.#stdin.close().catch(() => {}));
    this.#cpu = CPU_SAMPLING_AVAILABLE ? this.#watchCpu(options.limits.cpuMsPerRequest) : null;
    this.exited.then(() => this.#cpu?.stop());
    this.ended = this.exited.then(async (status) => {
      // Mark a crash at once, so the gateway's answer to the request it killed says so.
      const wasReady = this.state === "ready";
      if (wasReady) this.state = "crashed";
      await Promise.allSettled(pumps);
      if (this.state === "starting") {
        this.state = "failed";
        const why = status.code === IMPORT_FAILED ? "its module failed to load" : "it exited";
        options.log(`${prefix}failed to start: ${why} (exit code ${status.code})`);
        onFail(new FunctionStartError(spec.name, this.#tail.join("\n")));
      } else if (wasReady && this.#limit) {
        // Already said why (or nothing to say: an idle worker past its wall clock).
        this.state = status.code === LIMIT_EXIT && this.#limit.quiet ? "stopped" : "crashed";
      } else if (wasReady && stopRequested) {
        // Asked to stop (by us or by a signal to the whole group): a normal end, not news.
        this.state = "stopped";
      } else if (wasReady && status.success) {
        options.log(`${prefix}exited (exit code 0); the next request restarts it`);
      } else if (wasReady) {
        options.log(`${prefix}crashed (exit code ${status.code}, signal ${status.signal})`);
      }
      this.#notifyIdle();
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The limit that ended (or is ending) this worker, if one did. */
  get limitEnd(): LimitEnd | null {
    return this.#limit;
  }

  /** The per-request CPU limit, watched from outside (a busy loop cannot watch itself). */
  #watchCpu(limitMs: number): CpuWatch {
    const prefix = `[${this.spec.name}] `;
    return new CpuWatch(this.#child.pid, limitMs, BEFOREUNLOAD_AT, {
      nearLimit: () => this.#send({ kind: "beforeunload", reason: "cpu" }),
      overLimit: (request: ChargedRequest) => {
        const message =
          `function "${this.spec.name}" exceeded the CPU time limit (${request.label} ` +
          `used ${Math.round(request.chargedMs)} ms of CPU, limit ${limitMs} ms per request): ` +
          `worker ended with reason "cpu", as the hosted runtime ends it`;
        this.#limit ??= { reason: "cpu", message, quiet: false };
        this.retiring = true;
        this.#options.log(prefix + message);
        // Not SIGTERM: a busy loop never runs the handler that would drain it.
        try {
          this.#child.kill("SIGKILL");
        } catch { /* already exited */ }
      },
    });
  }

  /** Writes a command on the process's stdin (ignored once it has exited). */
  #send(command: HostCommand): void {
    this.#stdin.write(new TextEncoder().encode(hostCommandLine(command))).catch(() => {});
  }

  /** The last lines the process printed (for start-up failures). */
  get output(): string {
    return this.#tail.join("\n");
  }

  /**
   * Counts a request in flight (`label`, e.g. `GET /name`, names it in the CPU
   * limit's log line); call the returned function when its response is done.
   */
  begin(label = "a request"): () => void {
    this.inflight++;
    const endCpu = this.#cpu?.begin(label);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      endCpu?.();
      this.inflight--;
      if (this.inflight === 0) {
        if (this.#options.policy === "oneshot") this.retireSelf("early_drop");
        this.#notifyIdle();
      }
    };
  }

  /**
   * Takes no new requests and tells the process to retire itself: beforeunload
   * with `reason`, then in-flight requests and waitUntil work finish, then unload.
   */
  retireSelf(reason: "early_drop"): void {
    this.retiring = true;
    if (this.#selfRetiring || this.state !== "ready") return;
    this.#selfRetiring = true;
    this.#send({ kind: "retire", reason });
  }

  #notifyIdle(): void {
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }

  /** Waits until no request is in flight (or the process is gone). */
  async idle(): Promise<void> {
    while (this.inflight > 0 && this.state !== "crashed" && this.state !== "failed") {
      await new Promise<void>((r) => this.#idle.push(r));
    }
  }

  /** SIGTERM (the host drains), then SIGKILL after `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.state === "ready" || this.state === "starting") this.state = "stopped";
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already exited */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already exited */ }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Lets in-flight requests finish (at most `maxWaitMs`), then stops. */
  async retire(maxWaitMs: number): Promise<void> {
    await waitAtMost(this.idle(), maxWaitMs);
    // One retiring itself also finishes its waitUntil work first, bounded the same way.
    if (this.#selfRetiring) await waitAtMost(this.exited, maxWaitMs);
    await this.stop();
  }
}

async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) !== -1) {
      onLine(buffer.slice(0, nl).replace(/\r$/, ""));
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer) onLine(buffer);
}
