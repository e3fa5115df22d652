/**
 * Runs ONE function in its own process, as the edge runtime runs each function
 * in its own worker: `deno run local/functions/host.ts <name> <entrypoint>`.
 *
 * It accepts both function styles (`export default { fetch }` and a module
 * that calls `Deno.serve(handler)` itself), provides `EdgeRuntime.waitUntil`,
 * listens on a private loopback port and tells the gateway that port with a
 * marker line on stdout. An import that throws exits with {@link IMPORT_FAILED}.
 */
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type HostLimits,
  LIMIT_EXIT,
  LIMIT_MARKER,
  measureCpu,
  parseHostLimits,
  watchLimits,
} from "./host_limits.ts";
import { EdgeRuntimeEmulation, parseHostCommand, type UnloadReason } from "./host_runtime.ts";
import { installSandboxMessages, unreachableImportLine } from "./host_sandbox.ts";

/** Printed on stdout, followed by the port, once the function listens. */
export const READY_MARKER = "@@local-function-ready@@";
/** Printed on stdout when the process was asked to stop, so its exit is not taken for a crash. */
export const STOPPING_MARKER = "@@local-function-stopping@@";
/** Exit code of a function whose module failed to load. */
export const IMPORT_FAILED = 70;

type Handler = (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

function captureServe(): { handler: () => Handler | null } {
  let captured: Handler | null = null;
  const fake = (...args: unknown[]) => {
    const fn = args.find((a) => typeof a === "function") ??
      (args[0] as { handler?: unknown } | undefined)?.handler;
    if (typeof fn === "function") captured = fn as Handler;
    return { finished: new Promise(() => {}), shutdown: async () => {}, ref() {}, unref() {} };
  };
  (Deno as unknown as Record<string, unknown>).serve = fake;
  return { handler: () => captured };
}

async function load(name: string, entrypoint: string): Promise<Handler> {
  const captured = captureServe();
  let mod: { default?: { fetch?: Handler } };
  try {
    mod = await import(pathToFileURL(entrypoint).href);
  } catch (error) {
    const line = unreachableImportLine(name, error, dirname(dirname(entrypoint)));
    if (line) console.error(line);
    else console.error(`function "${name}" failed to load ${entrypoint}:`, error);
    Deno.exit(IMPORT_FAILED);
  }
  const fetchFn = mod.default?.fetch;
  const handler = typeof fetchFn === "function" ? fetchFn.bind(mod.default) : captured.handler();
  if (!handler) {
    console.error(`function "${name}": ${entrypoint} has no \`export default { fetch }\``);
    Deno.exit(IMPORT_FAILED);
  }
  return handler;
}

async function main(): Promise<void> {
  const [name, entrypoint, limitsArg] = Deno.args;
  if (!name || !entrypoint) {
    throw new Error("usage: local/functions/host.ts <name> <entrypoint> <limits json>");
  }
  const limits: HostLimits = parseHostLimits(limitsArg);
  const serve = Deno.serve.bind(Deno) as typeof Deno.serve;
  const runtime = new EdgeRuntimeEmulation();
  runtime.install();
  installSandboxMessages();
  const handler = await load(name, entrypoint);
  let inflight = 0;
  // Where the gateway samples this process's CPU time it also ends it at the limit; where it
  // cannot (no /proc), the request's CPU is measured here and only warned about.
  const measured = limits.cpuEnforcedByGateway ? handler : measureCpu(name, limits, handler);
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(`${READY_MARKER}${port}`),
  }, async (req, info) => {
    inflight++;
    try {
      return await measured(req, info);
    } finally {
      inflight--;
    }
  });
  let stopping = false;
  const stop = async (reason: UnloadReason) => {
    if (stopping) return;
    stopping = true;
    console.log(STOPPING_MARKER);
    runtime.beforeunload(reason);
    // Finish in-flight requests and background work, as the runtime does on shutdown.
    await server.shutdown();
    await runtime.settled();
    Deno.exit(0);
  };
  // The gateway's commands arrive on stdin; EOF means it is gone, so do not linger as an orphan.
  (async () => {
    let buffer = "";
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) !== -1) {
        const command = parseHostCommand(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (command?.kind === "beforeunload") runtime.beforeunload(command.reason);
        else if (command?.kind === "retire") void stop(command.reason);
      }
    }
    Deno.exit(0);
  })();
  watchLimits(name, limits, runtime, () => inflight > 0 || runtime.pendingCount > 0, (
    reason,
    message,
    quiet,
  ) => {
    console.log(`${LIMIT_MARKER}${JSON.stringify({ reason, message, quiet })}`);
    Deno.exit(LIMIT_EXIT); // Deno dispatches unload
  });
  // SIGINT too: a Ctrl-C or a supervisor may signal the whole process group at once.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void stop("termination"));
  }
}

if (import.meta.main) await main();
