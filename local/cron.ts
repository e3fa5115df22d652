/**
 * The local stand-in for the pg_cron job: calls `queue-worker` through the
 * gateway every interval with the `cron` secret key, one run at a time, and
 * logs each run's summary.
 */

/** Options for {@link startCron}. */
export interface CronOptions {
  /** e.g. http://127.0.0.1:54321/functions/v1/queue-worker */
  url: string;
  apiKey: string;
  intervalMs: number;
  /** Skips a tick when the function is not being served. */
  enabled: () => boolean;
  log: (line: string) => void;
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

/** Starts the loop; the first run is one interval after start, like a fresh schedule. */
export function startCron(options: CronOptions): Cron {
  const doFetch = options.fetch ?? fetch;
  const stop = new AbortController();
  let runs = 0;
  const sleep = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.intervalMs);
      stop.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  const loop = (async () => {
    while (!stop.signal.aborted) {
      await sleep();
      if (stop.signal.aborted || !options.enabled()) continue;
      const started = performance.now();
      try {
        const res = await doFetch(options.url, {
          method: "POST",
          headers: { apikey: options.apiKey, "content-type": "application/json" },
          body: JSON.stringify({ wait: true }),
          signal: stop.signal,
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch { /* not JSON: logged as text */ }
        const ms = (performance.now() - started).toFixed(0);
        options.log(`cron: queue-worker ${res.status} in ${ms} ms: ${summary(body)}`);
      } catch (error) {
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
