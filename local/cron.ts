/**
 * The local stand-in for the pg_cron job: calls `queue-worker` through the
 * gateway every interval with the `cron` secret key, one run at a time. A run
 * that did work or failed is logged at info with its summary; an idle run,
 * and every line it caused, only at debug, so an idle stack stays quiet.
 */
import { sleep } from "./common/mod.ts";

/** Options for {@link startCron}. */
export interface CronOptions {
  /** e.g. http://127.0.0.1:54321/functions/v1/queue-worker */
  url: string;
  apiKey: string;
  intervalMs: number;
  /** Skips a tick when the function is not being served. */
  enabled: () => boolean;
  log: (line: string) => void;
  debug?: (line: string) => void;
  /**
   * Holds the other lines a run causes (gateway, function) under its request
   * id; the returned function releases them, loud or not.
   */
  hold?: (requestId: string) => (loud: boolean) => void;
  fetch?: typeof fetch;
}

/** A running scheduler. */
export interface Cron {
  /** Number of runs so far (for tests). */
  runs(): number;
  stop(): Promise<void>;
}

function summary(body: unknown): string {
  const data = (body as { data?: Record<string, unknown> } | null)?.data;
  if (!data || typeof data !== "object") return JSON.stringify(body).slice(0, 200);
  return Object.entries(data).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
}

/** True when a summary counts anything (claimed, completed, ...) other than time. */
export function didWork(body: unknown): boolean {
  const data = (body as { data?: Record<string, unknown> } | null)?.data;
  if (!data || typeof data !== "object") return false;
  return Object.entries(data).some(([k, v]) => typeof v === "number" && v > 0 && !/ms$/i.test(k));
}

/** Starts the loop; the first run is one interval after start, like a fresh schedule. */
export function startCron(options: CronOptions): Cron {
  const doFetch = options.fetch ?? fetch;
  const debug = options.debug ?? (() => {});
  const stop = new AbortController();
  let runs = 0;
  const loop = (async () => {
    while (!stop.signal.aborted) {
      await sleep(options.intervalMs, stop.signal);
      if (stop.signal.aborted || !options.enabled()) continue;
      const started = performance.now();
      const requestId = `cron-${crypto.randomUUID()}`;
      const release = options.hold?.(requestId) ?? (() => {});
      try {
        const res = await doFetch(options.url, {
          method: "POST",
          headers: {
            apikey: options.apiKey,
            "content-type": "application/json",
            "x-request-id": requestId,
          },
          body: JSON.stringify({ wait: true }),
          signal: stop.signal,
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch { /* not JSON: logged as text */ }
        const ms = (performance.now() - started).toFixed(0);
        const loud = !res.ok || didWork(body);
        release(loud);
        (loud ? options.log : debug)(
          `cron: queue-worker ${res.status} in ${ms} ms: ${summary(body)}`,
        );
      } catch (error) {
        release(!stop.signal.aborted);
        if (!stop.signal.aborted) options.log(`cron: queue-worker call failed: ${error}`);
      }
      runs++;
    }
  })();
  return {
    runs: () => runs,
    stop: async () => {
      stop.abort();
      await loop;
    },
  };
}
