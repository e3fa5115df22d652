/**
 * Forwards one request to a function process and streams both bodies through.
 * Maps the failures the gateway itself sees: no response within the timeout
 * (504) and a process that died or reset the connection (502).
 */
import type { FunctionProcess } from "./function_process.ts";
import { gatewayProblem } from "./problem.ts";

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
];

/** Wraps a body so `onDone` runs once it has been fully read, failed or been cancelled. */
export function trackBody(
  body: ReadableStream<Uint8Array>,
  onDone: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          onDone();
        } else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
        onDone();
      }
    },
    cancel(reason) {
      onDone();
      return reader.cancel(reason);
    },
  });
}

/** Options for {@link proxyToFunction}. */
export interface ProxyOptions {
  /** Path as the function sees it: `/<name>[/...]` plus the query. */
  pathAndQuery: string;
  timeoutMs: number;
  requestId: string;
}

/** Sends `req` to `process` and returns the function's response (or a gateway problem). */
export async function proxyToFunction(
  req: Request,
  process: FunctionProcess,
  options: ProxyOptions,
): Promise<Response> {
  const release = process.begin();
  const name = process.spec.name;
  const headers = new Headers(req.headers);
  for (const h of HOP_BY_HOP) headers.delete(h);
  const incoming = new URL(req.url);
  headers.set("x-forwarded-host", incoming.host);
  headers.set("x-forwarded-proto", incoming.protocol.replace(":", ""));
  // fetch() would decompress a gzip answer but keep its Content-Encoding header;
  // the gateway's own server compresses for the client instead.
  headers.set("accept-encoding", "identity");
  // A client that leaves mid-stream cancels the body below, which closes the
  // upstream connection; req.signal is not used because in Deno.serve's legacy
  // mode it also fires on every successful response.
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, options.timeoutMs);
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && req.body !== null;
  try {
    const upstream = await fetch(`http://127.0.0.1:${process.port}${options.pathAndQuery}`, {
      method: req.method,
      headers,
      body: hasBody ? req.body : undefined,
      redirect: "manual",
      signal: abort.signal,
    });
    clearTimeout(timer);
    const done = release;
    const out = new Headers(upstream.headers);
    for (const h of HOP_BY_HOP) out.delete(h);
    const body = upstream.body ? trackBody(upstream.body, done) : (done(), null);
    return new Response(body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: out,
    });
  } catch (error) {
    clearTimeout(timer);
    release();
    if (timedOut) {
      return gatewayProblem({
        status: 504,
        code: "function-timeout",
        title: "Gateway Timeout",
        detail: `function "${name}" sent no response within ${options.timeoutMs} ms`,
      }, options.requestId);
    }
    // Give the exit notification a moment so the log says "crashed" first.
    let wait: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([process.exited, new Promise((r) => wait = setTimeout(r, 250))]);
    clearTimeout(wait);
    const crashed = process.state === "crashed";
    return gatewayProblem({
      status: 502,
      code: crashed ? "function-crashed" : "function-unreachable",
      title: "Bad Gateway",
      detail: crashed
        ? `function "${name}" crashed while handling the request; see the dev server log`
        : `function "${name}" did not answer (${(error as Error).name})`,
    }, options.requestId);
  }
}
