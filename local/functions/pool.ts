/**
 * The set of running functions: starts one process per function, restarts a
 * crashed one on its next request, and hot-reloads by starting the new
 * process first and retiring the old one once its in-flight requests finish.
 * Under `[edge_runtime] policy = "oneshot"` every request gets a process of
 * its own, which retires itself once the response is sent (process.ts).
 */
import { sameSpec, type ServedFunction } from "./registry.ts";
import type { EdgeRuntimePolicy, FunctionLimits } from "../project/mod.ts";
import { FunctionProcess, type SpawnOptions } from "./process.ts";

/** The outcome of asking for a function's process. */
export type Acquired =
  | { kind: "ready"; process: FunctionProcess }
  | { kind: "unknown" }
  | { kind: "failed"; output: string };

/** Manages every function's current process. */
export class FunctionPool {
  #specs = new Map<string, ServedFunction>();
  #current = new Map<string, FunctionProcess>();
  #retiring = new Map<FunctionProcess, Promise<void>>();
  #closed = false;

  constructor(
    readonly options: SpawnOptions,
    /** How long a retired process may keep serving its in-flight requests. */
    readonly drainMs = 150_000,
  ) {}

  /**
   * Sets the environment for processes started from now on; true when it
   * differs from the current one (every function must then restart to see it).
   */
  setEnv(env: Record<string, string>): boolean {
    const current = this.options.env;
    const keys = Object.keys(env);
    const same = keys.length === Object.keys(current).length &&
      keys.every((k) => current[k] === env[k]);
    this.options.env = env;
    return !same;
  }

  /** Sets the limits for processes started from now on; true when they changed. */
  setLimits(limits: FunctionLimits): boolean {
    const current = this.options.limits;
    const same = (Object.keys(limits) as (keyof FunctionLimits)[]).every((k) =>
      current[k] === limits[k]
    );
    this.options.limits = limits;
    return !same;
  }

  /** Sets the policy for processes started from now on; true when it changed. */
  setPolicy(policy: EdgeRuntimePolicy): boolean {
    const changed = this.options.policy !== policy;
    this.options.policy = policy;
    return changed;
  }

  /** Names of the functions being served. */
  get names(): string[] {
    return [...this.#specs.keys()];
  }

  /** The spec of a served function, if any. */
  spec(name: string): ServedFunction | undefined {
    return this.#specs.get(name);
  }

  /** The current process of a function (for tests and status). */
  current(name: string): FunctionProcess | undefined {
    return this.#current.get(name);
  }

  #spawn(spec: ServedFunction): FunctionProcess {
    const next = new FunctionProcess(spec, this.options);
    const previous = this.#current.get(spec.name);
    this.#current.set(spec.name, next);
    if (previous) this.#retire(previous);
    return next;
  }

  /**
   * A new current process under oneshot. The previous one is not stopped: it
   * is serving (or has served) its own request and retires itself after it;
   * it is only tracked, so close() can stop it.
   */
  #spawnOneshot(spec: ServedFunction, previous: FunctionProcess): FunctionProcess {
    const next = new FunctionProcess(spec, this.options);
    this.#current.set(spec.name, next);
    this.#retiring.set(previous, previous.ended.finally(() => this.#retiring.delete(previous)));
    return next;
  }

  #retire(process: FunctionProcess): void {
    const done = process.retire(this.drainMs).finally(() => this.#retiring.delete(process));
    this.#retiring.set(process, done);
  }

  /**
   * Makes the served set equal `specs`: new functions start, removed ones stop,
   * and those named in `reload` (or whose spec changed) restart. Resolves when
   * every started process is ready or has failed.
   */
  async sync(specs: ServedFunction[], reload: Set<string> | "all" = new Set()): Promise<void> {
    if (this.#closed) return;
    const started: FunctionProcess[] = [];
    const wanted = new Map(specs.map((s) => [s.name, s]));
    for (const [name, process] of this.#current) {
      if (!wanted.has(name)) {
        this.#current.delete(name);
        this.#specs.delete(name);
        this.#retire(process);
      }
    }
    for (const spec of specs) {
      const old = this.#specs.get(spec.name);
      const changed = !old || !sameSpec(old, spec);
      this.#specs.set(spec.name, spec);
      if (changed || reload === "all" || reload.has(spec.name)) started.push(this.#spawn(spec));
    }
    await Promise.allSettled(started.map((p) => p.ready));
  }

  /** The process to send a request to, restarting a crashed one. */
  async acquire(name: string): Promise<Acquired> {
    const spec = this.#specs.get(name);
    if (!spec || this.#closed) return { kind: "unknown" };
    let process = this.#current.get(name)!;
    if (process.state === "crashed") this.options.log(`[${name}] restarting`);
    const usable = !(process.state === "crashed" || process.state === "stopped" ||
      process.retiring);
    if (this.options.policy === "oneshot") {
      if (!usable) process = this.#spawnOneshot(spec, process);
      // This request's own worker: the next request gets a new one.
      process.retiring = true;
    } else if (!usable) {
      process = this.#spawn(spec);
    }
    try {
      await process.ready;
    } catch {
      return { kind: "failed", output: process.output };
    }
    return { kind: "ready", process };
  }

  /** Stops every process, retiring ones included (in-flight requests get a short grace). */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#current.values(), ...this.#retiring.keys()];
    this.#current.clear();
    await Promise.allSettled(all.map((p) => p.stop()));
  }
}
