/**
 * What every handler receives ({@link HandlerContext}), and the per-request
 * state the pipeline carries from the first byte to the access log
 * ({@link RequestState}).
 */
import type { AuthContext } from "../auth/authenticate.ts";
import type { Database } from "../core/db.ts";
import type { Env } from "../core/env.ts";
import type { Logger } from "../core/log.ts";
import { continueTrace, type TraceContext, traceFields } from "../core/trace.ts";
import { clientIp } from "../resilience/rate_limit/client_ip.ts";

/** What every handler receives. */
export interface HandlerContext {
  req: Request;
  auth: AuthContext;
  requestId: string;
  env: Env;
  /** The function's logger; every line carries the request's traceId and spanId. */
  log: Logger;
  /**
   * This request's span (W3C Trace Context): the caller's `traceparent` continued,
   * or a new trace. Pass it on: `outboundFetch(url, init, { trace })`,
   * `enqueue(sql, job, payload, { trace })`.
   */
  readonly trace: TraceContext;
  /**
   * The caller's IP: the configured trusted header's value, else the connection's
   * peer, else "unknown" (see client_ip.ts); never an unvetted client-supplied hop.
   */
  readonly clientIp: string;
  /** Path parameters of a route (`/notes/:id` -> `{ id }`). */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Keeps the isolate alive for background work after the response (EdgeRuntime.waitUntil). */
  waitUntil(promise: Promise<unknown>): void;
  db: Database;
}

/** What `Deno.serve` passes beside the request; only the peer address is read. */
export interface ServeInfo {
  remoteAddr?: { hostname?: string };
}

/** One request on its way through the pipeline; built once, filled in as things become known. */
export interface RequestState {
  readonly req: Request;
  readonly url: string;
  /** The path below `/<function>` ("" for the root). */
  readonly path: string;
  readonly requestId: string;
  readonly info: ServeInfo | undefined;
  /** The CORS headers every answer carries (with the request id); shared, never mutated. */
  readonly cors: Record<string, string>;
  /** The Authorization header, once the action path has read it (read once per request). */
  authorization?: string | null;
  /** The answer that already carries the CORS and request-id headers (invoke.ts sets them). */
  answered?: Response;
  /** Route parameters, once a route matched. */
  params: Record<string, string>;
  /** The action envelope's payload, once read. */
  payload: unknown;
  /** For the logs: the action named and the auth mode that matched. */
  action?: string;
  auth?: string;
  /** The request's span, made on first use (see {@link requestTrace}). */
  trace?: TraceContext;
}

/**
 * The request's span: the incoming `traceparent`/`tracestate` continued, or a new
 * trace. Made on first use (a log line, an outbound call), so a request that needs
 * none pays nothing.
 */
export function requestTrace(state: RequestState): TraceContext {
  if (state.trace) return state.trace;
  const { headers } = state.req;
  const parent = headers.get("traceparent");
  // tracestate means nothing without a traceparent: not even read then.
  return state.trace = continueTrace(parent, parent ? headers.get("tracestate") : null);
}

/** What a context needs from the function: its env, log, database and runtime hooks. */
export interface ContextDeps {
  env: Env;
  log: Logger;
  db: Database;
  waitUntil: (promise: Promise<unknown>) => void;
}

/**
 * The handler context. A class, so `clientIp`, `query` and `signal` are prototype
 * getters: parsing the URL or touching `req.signal` costs time and most handlers
 * need none of them.
 */
export class RequestContext implements HandlerContext {
  readonly req: Request;
  readonly requestId: string;
  readonly params: Record<string, string>;
  readonly env: Env;
  readonly db: Database;
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly #baseLog: Logger;
  #log: Logger | undefined;

  constructor(private readonly state: RequestState, readonly auth: AuthContext, deps: ContextDeps) {
    this.req = state.req;
    this.requestId = state.requestId;
    this.params = state.params;
    this.env = deps.env;
    this.#baseLog = deps.log;
    this.db = deps.db;
    this.waitUntil = deps.waitUntil;
  }
  get log(): Logger {
    return this.#log ??= this.#baseLog.child(traceFields(requestTrace(this.state)));
  }
  get trace(): TraceContext {
    return requestTrace(this.state);
  }
  get clientIp(): string {
    return clientIp(this.req, this.env.clientIp, this.state.info?.remoteAddr?.hostname);
  }
  get query(): URLSearchParams {
    return new URL(this.state.url).searchParams;
  }
  get signal(): AbortSignal {
    return this.req.signal;
  }
}
