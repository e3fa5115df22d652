/**
 * The hosted runtime's CPU limit per request, enforced from outside the
 * function process: a synchronous loop cannot be interrupted from its own
 * thread, but its process can be ended. While a worker has requests in
 * flight, the gateway samples the process's CPU time (Linux:
 * `/proc/<pid>/stat`, utime + stime) and charges it to those requests.
 *
 * Attribution: the CPU a worker uses while N requests are in flight is split
 * evenly among those N (a request alone is charged all of it). A request is in
 * flight from the moment the gateway hands it to the worker until its response
 * body has been sent. CPU used while no request is in flight (module loading,
 * `EdgeRuntime.waitUntil` work after the response) is charged to no request.
 * The shares of all requests add up to the CPU the process really used, so
 * concurrency never makes a worker look busier than it is; a request that
 * loops while others wait is caught once its share passes the limit.
 */

/** Linux reports utime/stime in clock ticks of USER_HZ, 100 on every Linux ABI. */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system, all threads) of a process in ms, or null where /proc is missing. */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // Field 2 (the command) may hold spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) * 1000 / TICKS_PER_SECOND;
}

/** Whether this machine lets the gateway read a process's CPU time. */
export const CPU_SAMPLING_AVAILABLE: boolean = processCpuMs(Deno.pid) !== null;

/** One request in flight and the CPU charged to it so far. */
export interface ChargedRequest {
  readonly label: string;
  chargedMs: number;
}

/**
 * Splits a process's CPU time among its requests in flight. Pure
 * bookkeeping: the caller feeds it the process's total CPU time.
 */
export class CpuLedger {
  readonly #open = new Set<ChargedRequest>();
  #lastMs: number | null = null;

  /** Requests in flight. */
  get size(): number {
    return this.#open.size;
  }

  /** Opens a request; `totalMs` is the process's CPU time now. */
  open(label: string, totalMs: number): ChargedRequest {
    this.sample(totalMs);
    const request = { label, chargedMs: 0 };
    this.#open.add(request);
    return request;
  }

  /** Closes a request after charging it its share up to `totalMs`. */
  close(request: ChargedRequest, totalMs: number): void {
    this.sample(totalMs);
    this.#open.delete(request);
  }

  /** Charges the CPU used since the last sample evenly to the open requests. */
  sample(totalMs: number): void {
    const last = this.#lastMs;
    this.#lastMs = totalMs;
    if (last === null || this.#open.size === 0) return;
    const share = Math.max(0, totalMs - last) / this.#open.size;
    for (const request of this.#open) request.chargedMs += share;
  }

  /** The open request charged the most, if any. */
  heaviest(): ChargedRequest | null {
    let top: ChargedRequest | null = null;
    for (const request of this.#open) if (!top || request.chargedMs > top.chargedMs) top = request;
    return top;
  }
}

/** What the watch tells its worker. */
export interface CpuWatchEvents {
  /** The heaviest request passed `beforeunloadAt` of the limit (once per worker). */
  nearLimit(request: ChargedRequest): void;
  /** A request passed the limit: end the worker (once per worker). */
  overLimit(request: ChargedRequest): void;
}

/** How often the process is sampled while requests are in flight. */
const SAMPLE_MS = 25;

/**
 * Watches one worker process against the per-request CPU limit. `begin`
 * opens a request and returns its `end`. Sampling runs only while requests
 * are in flight. After `nearLimit`, the worker is given a further tenth of the
 * limit in CPU time (not wall time) to receive its `beforeunload` before it is
 * ended, so a worker that yields gets the event and a busy loop still ends.
 */
export class CpuWatch {
  readonly #ledger = new CpuLedger();
  #timer: ReturnType<typeof setInterval> | null = null;
  #nearAtMs: number | null = null;
  #over = false;

  constructor(
    readonly pid: number,
    readonly limitMs: number,
    readonly beforeunloadAt: number,
    readonly events: CpuWatchEvents,
    readonly readCpuMs: (pid: number) => number | null = processCpuMs,
  ) {}

  /** Opens a request; call the returned function once its response is done. */
  begin(label: string): () => void {
    const now = this.readCpuMs(this.pid);
    if (now === null) return () => {};
    const request = this.#ledger.open(label, now);
    if (this.#timer === null) {
      const timer = setInterval(() => this.check(), SAMPLE_MS);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    return () => {
      const end = this.readCpuMs(this.pid);
      if (end !== null) this.#ledger.sample(end);
      this.#judge();
      this.#ledger.close(request, end ?? 0);
      if (this.#ledger.size === 0) this.stop();
    };
  }

  /** Stops sampling (the process ended, or no request is in flight). */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Samples the process now and judges its requests (the sampling timer calls this). */
  check(): void {
    const now = this.readCpuMs(this.pid);
    if (now === null) return this.stop(); // the process is gone
    this.#ledger.sample(now);
    this.#judge();
  }

  #judge(): void {
    const top = this.#ledger.heaviest();
    if (!top || this.#over) return;
    if (this.#nearAtMs === null && top.chargedMs >= this.limitMs * this.beforeunloadAt) {
      this.#nearAtMs = top.chargedMs;
      this.events.nearLimit(top);
    }
    // nearLimit fired at #nearAtMs (at or past 90%): the worker must have had a tenth of the
    // limit in CPU since, so a worker that yields has received its beforeunload.
    if (this.#nearAtMs === null) return;
    const graceMs = this.#nearAtMs + this.limitMs * 0.1;
    if (top.chargedMs >= this.limitMs && top.chargedMs >= graceMs) {
      this.#over = true;
      this.stop();
      this.events.overLimit(top);
    }
  }
}
