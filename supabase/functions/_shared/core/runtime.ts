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
