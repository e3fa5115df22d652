/**
 * Forwards one request to a function process and streams both bodies through.
 * Maps the failures the gateway itself sees: a request body the client failed
 * to deliver (400), no response within the timeout (504), a worker ended by a
 * hosted-runtime limit (546, as the platform answers) and a process that
 * died or reset the connection (502).
 */
import { errorMessage, waitAtMost } from "../common/mod.ts";
import type { FunctionProcess } from "../functions/mod.ts";
import { gatewayProblem } from "./problem.ts";
import type { ResponseStreaming } from "./tcp_front.ts";

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
function trackBody(
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

/** Wraps the client's body so a failure to read it (bad framing, client gone) is recorded. */
function watchClientBody(
  body: ReadableStream<Uint8Array>,
  onError: (error: unknown) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        onError(error);
        controller.error(error);
      }
    },
    cancel(reason) {
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
  /** Told when the function's body streams, so the TCP front does not count the response as sent. */
  streaming?: ResponseStreaming;
}

/** Sends `req` to `process` and returns the function's response (or a gateway problem). */
export async function proxyToFunction(
  req: Request,
  process: FunctionProcess,
  options: ProxyOptions,
): Promise<Response> {
  const release = process.begin(`${req.method} ${options.pathAndQuery.split("?")[0]}`);
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
  // An object, so the type checker does not narrow it to its initial value.
  const client: { bodyError?: unknown } = {};
  const requestBody = hasBody
    ? watchClientBody(req.body!, (error) => client.bodyError = error ?? "unknown error")
    : undefined;
  try {
    const upstream = await fetch(`http://127.0.0.1:${process.port}${options.pathAndQuery}`, {
      method: req.method,
      headers: forwardedHeaders(req),
      body: requestBody,
      redirect: "manual",
      signal: abort.signal,
    });
    clearTimeout(timer);
    return relayResponse(upstream, release, options.streaming);
  } catch (error) {
    clearTimeout(timer);
    release();
    return await failureProblem(error, process, options, {
      bodyError: client.bodyError,
      timedOut,
    });
  }
}

/** The client's headers as the function gets them: hop-by-hop ones dropped, X-Forwarded-* added. */
function forwardedHeaders(req: Request): Headers {
  const headers = new Headers(req.headers);
  for (const h of HOP_BY_HOP) headers.delete(h);
  const incoming = new URL(req.url);
  headers.set("x-forwarded-host", incoming.host);
  headers.set("x-forwarded-proto", incoming.protocol.replace(":", ""));
  // fetch() would decompress a gzip answer but keep its Content-Encoding header;
  // the gateway's own server compresses for the client instead.
  headers.set("accept-encoding", "identity");
  return headers;
}

/** The function's response for the client; `release` runs once its body is done. */
function relayResponse(
  upstream: Response,
  release: () => void,
  streaming: ResponseStreaming | undefined,
): Response {
  const out = new Headers(upstream.headers);
  for (const h of HOP_BY_HOP) out.delete(h);
  let body: ReadableStream<Uint8Array> | null = null;
  if (upstream.body) {
    const sent = streaming?.begin();
    body = trackBody(upstream.body, () => {
      release();
      sent?.();
    });
  } else release();
  return new Response(body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: out,
  });
}

/** Why a forwarded request got no response: the client's body (400), the timeout (504) or the process (502). */
async function failureProblem(
  error: unknown,
  process: FunctionProcess,
  options: ProxyOptions,
  seen: { bodyError: unknown; timedOut: boolean },
): Promise<Response> {
  const name = process.spec.name;
  if (seen.bodyError !== undefined) {
    // The client's side failed, not the function's: a 502 would send them looking there.
    return gatewayProblem({
      status: 400,
      code: "malformed_request_body",
      detail: `the request body could not be read (${
        errorMessage(seen.bodyError)
      }): malformed chunked encoding, or the client stopped sending mid-body`,
    }, options.requestId);
  }
  if (seen.timedOut) {
    return gatewayProblem({
      status: 504,
      code: "function_timeout",
      title: "Gateway Timeout",
      detail: `function "${name}" sent no response within ${options.timeoutMs} ms`,
    }, options.requestId);
  }
  // Give the exit notification a moment so the log says why first (a limit's line, or crashed).
  await waitAtMost(process.ended, 1000);
  const limit = process.limitEnd;
  if (limit) {
    // The platform's answer when a limit ends the worker: 546 with sb-error-code
    // WORKER_RESOURCE_LIMIT (named WORKER_LIMIT before 2026).
    return gatewayProblem({
      status: 546,
      code: "worker_resource_limit",
      title: "Resource Limit",
      detail: `${limit.message} (limit "${limit.reason}"; raise it in config.toml [local.limits])`,
      headers: { "sb-error-code": "WORKER_RESOURCE_LIMIT" },
    }, options.requestId);
  }
  const crashed = process.state === "crashed";
  return gatewayProblem({
    status: 502,
    code: crashed ? "function_crashed" : "function_unreachable",
    title: "Bad Gateway",
    detail: crashed
      ? `function "${name}" crashed while handling the request; see the dev server log`
      : `function "${name}" did not answer (${(error as Error).name})`,
  }, options.requestId);
}
