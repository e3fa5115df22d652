/**
 * The edge runtime's hooks, touched here only so the rest of `_shared` stays a
 * web-standard `Request -> Response` library.
 */
import { errorFields, type Logger } from "./log.ts";

/**
 * `EdgeRuntime.waitUntil`, guarded: a background task that fails is logged,
 * never unhandled. Without an edge runtime (tests, `deno serve`) the task just runs.
 */
export function defaultWaitUntil(log: Logger): (promise: Promise<unknown>) => void {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil?(p: Promise<unknown>): void } })
    .EdgeRuntime;
  return (promise) => {
    const guarded = promise.catch((error) =>
      log.error("background task failed", errorFields(error))
    );
    if (runtime?.waitUntil) runtime.waitUntil(guarded);
  };
}

/**
 * Calls `listener` with the reason ("cpu", "memory", "wall_clock", "early_drop",
 * "termination", or "unknown") when the runtime announces the worker's end with
 * `beforeunload`; returns the unsubscribe. Where there is no such event it never fires.
 */
export function onBeforeUnload(listener: (reason: string) => void): () => void {
  // Typed loosely: the edge runtime's and Deno's declarations of Event differ.
  type Listener = (event: unknown) => void;
  const target = globalThis as unknown as {
    addEventListener?(type: string, fn: Listener): void;
    removeEventListener?(type: string, fn: Listener): void;
  };
  if (typeof target.addEventListener !== "function") return () => {};
  const handler: Listener = (event) => {
    // The hosted runtime sends `{ reason }`; functions-js' types declare the bare string.
    const detail = (event as { detail?: unknown } | null)?.detail;
    const reason = typeof detail === "string"
      ? detail
      : typeof (detail as { reason?: unknown } | null)?.reason === "string"
      ? (detail as { reason: string }).reason
      : "unknown";
    listener(reason);
  };
  target.addEventListener("beforeunload", handler);
  return () => target.removeEventListener?.("beforeunload", handler);
}
