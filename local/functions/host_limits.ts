/**
 * The hosted runtime's limits, inside a function process: memory (heap +
 * external, sampled; V8's own heap cap, set by the parent, catches what a
 * sample misses) and the worker's wall clock. CPU time per request is
 * enforced by the gateway (cpu_limit.ts: a synchronous loop cannot be
 * interrupted from its own thread); where the gateway cannot sample another
 * process's CPU time, it is measured here and only warned about.
 */
import process from "node:process";
import type { EdgeRuntimeEmulation } from "./host_runtime.ts";

/** Limits handed to the host by the parent (JSON in its third argument). */
export interface HostLimits {
  memoryMb: number;
  wallClockMs: number;
  cpuMsPerRequest: number;
  /** The gateway samples this process's CPU and ends it at the limit (else: measure, warn). */
  cpuEnforcedByGateway: boolean;
}

/** Printed on stdout, followed by JSON `{ reason, message, quiet }`, before a limit ends the worker. */
export const LIMIT_MARKER = "@@local-function-limit@@";
/** Printed on stdout when the worker nears its wall clock: send new requests to a new worker. */
export const RETIRING_MARKER = "@@local-function-retiring@@";
/** Exit code of a worker ended by a limit. */
export const LIMIT_EXIT = 71;
/** `beforeunload` fires when this share of the memory or wall-clock limit is used. */
export const BEFOREUNLOAD_AT = 0.9;
const SAMPLE_MS = 50;

/** Parses and checks the limits argument; a bad one is a usage error. */
export function parseHostLimits(raw: string | undefined): HostLimits {
  const parsed = JSON.parse(raw ?? "null") as Partial<HostLimits> | null;
  const ok = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n > 0;
  if (
    !parsed || !ok(parsed.memoryMb) || !ok(parsed.wallClockMs) || !ok(parsed.cpuMsPerRequest) ||
    typeof parsed.cpuEnforcedByGateway !== "boolean"
  ) {
    throw new Error(`host: bad limits argument ${raw}`);
  }
  return parsed as HostLimits;
}

/** Heap + external bytes, what the hosted runtime counts against the memory limit. */
export function usedMemory(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

/** Process CPU time so far, in milliseconds. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;

/** Watches memory and wall clock; `end` is called once when a limit ends the worker. */
export function watchLimits(
  name: string,
  limits: HostLimits,
  runtime: EdgeRuntimeEmulation,
  busy: () => boolean,
  end: (reason: "memory" | "wall_clock", message: string, quiet: boolean) => void,
): void {
  const started = performance.now();
  const memoryLimit = limits.memoryMb * 1024 * 1024;
  let ended = false;
  let retiring = false;
  const timer = setInterval(() => {
    if (ended) return;
    const used = usedMemory();
    const elapsed = performance.now() - started;
    if (used >= memoryLimit * BEFOREUNLOAD_AT) runtime.beforeunload("memory");
    if (elapsed >= limits.wallClockMs * BEFOREUNLOAD_AT && !retiring) {
      // Like the hosted runtime's early retire: new requests go to a fresh worker.
      retiring = true;
      console.log(RETIRING_MARKER);
      runtime.beforeunload("wall_clock");
    }
    if (used >= memoryLimit) {
      ended = true;
      end(
        "memory",
        `function "${name}" exceeded the memory limit (${mb(used)} used, limit ` +
          `${limits.memoryMb} MB): worker ended, as the hosted runtime ends it`,
        false,
      );
    } else if (elapsed >= limits.wallClockMs) {
      ended = true;
      const cut = busy();
      end(
        "wall_clock",
        `function "${name}" reached the wall-clock limit (${limits.wallClockMs / 1000} s per ` +
          `worker): worker ended${
            cut ? " with work in flight" : ""
          }; the next request starts a new one`,
        !cut,
      );
    }
  }, SAMPLE_MS);
  Deno.unrefTimer(timer);
}

/**
 * Wraps a handler to measure each request's CPU time and warn past the limit
 * (the fallback where the gateway cannot enforce it; with concurrent requests
 * each is charged all the process's CPU during its own span: an upper bound).
 */
export function measureCpu<A extends unknown[]>(
  name: string,
  limits: HostLimits,
  handler: (req: Request, ...rest: A) => Response | Promise<Response>,
): (req: Request, ...rest: A) => Promise<Response> {
  return async (req, ...rest) => {
    const before = cpuMs();
    try {
      return await handler(req, ...rest);
    } finally {
      const used = cpuMs() - before;
      if (used > limits.cpuMsPerRequest) {
        const path = new URL(req.url).pathname;
        console.error(
          `function "${name}": ${req.method} ${path} used ${Math.round(used)} ms of CPU, over ` +
            `the hosted limit of ${limits.cpuMsPerRequest} ms per request (deployed, the ` +
            `worker would be ended with reason "cpu")`,
        );
      }
    }
  };
}
