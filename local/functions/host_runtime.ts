/**
 * The hosted Edge Runtime's globals, emulated inside a function process:
 * `EdgeRuntime.waitUntil` and the worker events. `beforeunload` is a
 * CustomEvent whose `detail` is `{ reason }`, with the reasons of
 * supabase/edge-runtime (`WillTerminateReason`, snake_case): "cpu", "memory",
 * "wall_clock", "early_drop", "termination". Deno itself dispatches `unload`
 * when the process exits.
 */

/** Why a worker is about to end, as the hosted runtime names it. */
export type UnloadReason = "cpu" | "memory" | "wall_clock" | "early_drop" | "termination";

const UNLOAD_REASONS: ReadonlySet<string> = new Set<UnloadReason>([
  "cpu",
  "memory",
  "wall_clock",
  "early_drop",
  "termination",
]);

/**
 * What the gateway tells a function process, one line each on its stdin:
 * `beforeunload <reason>` (a limit is near) or `retire <reason>` (fire
 * beforeunload, finish in-flight requests and waitUntil work, then exit).
 */
export type HostCommand = { kind: "beforeunload" | "retire"; reason: UnloadReason };

/** The stdin line of a command. */
export function hostCommandLine(command: HostCommand): string {
  return `${command.kind} ${command.reason}\n`;
}

/** Parses one stdin line; null for anything else. */
export function parseHostCommand(line: string): HostCommand | null {
  const [kind, reason, extra] = line.trim().split(" ");
  if (extra !== undefined || !reason || !UNLOAD_REASONS.has(reason)) return null;
  if (kind !== "beforeunload" && kind !== "retire") return null;
  return { kind, reason: reason as UnloadReason };
}

/** Background work and lifecycle events of one function process. */
export class EdgeRuntimeEmulation {
  readonly #pending = new Set<Promise<unknown>>();
  readonly #sent = new Set<UnloadReason>();

  /** Installs `globalThis.EdgeRuntime`. */
  install(): void {
    (globalThis as Record<string, unknown>).EdgeRuntime = {
      waitUntil: (promise: Promise<unknown>) => {
        const tracked = Promise.resolve(promise).catch((error) => {
          console.error("waitUntil task failed:", error);
        }).finally(() => this.#pending.delete(tracked));
        this.#pending.add(tracked);
        return promise;
      },
    };
  }

  /** Work handed to waitUntil that has not settled yet. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Waits for every waitUntil task (including ones added meanwhile). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Dispatches `beforeunload` with `{ reason }`, at most once per reason. */
  beforeunload(reason: UnloadReason): void {
    if (this.#sent.has(reason)) return;
    this.#sent.add(reason);
    try {
      dispatchEvent(new CustomEvent("beforeunload", { cancelable: true, detail: { reason } }));
    } catch (error) {
      console.error("beforeunload listener failed:", error);
    }
  }
}
