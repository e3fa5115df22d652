/**
 * One request from first byte to access log: request id, CORS preflight,
 * health and readiness, dispatch to an action or route (see invoke.ts), the one
 * problem+json exit for every error, CORS headers on every answer, the access log.
 */
import { type AuthMode, missingCredentials } from "../auth/authenticate.ts";
import type { HealthBody } from "../core/readiness.ts";
import { errorFields } from "../core/log.ts";
import type { SpanExporter } from "../core/otlp.ts";
import { type CorsPolicy, preflightHeaders, withCors } from "./cors.ts";
import { type RequestState, requestTrace, type ServeInfo } from "./context.ts";
import { traceFields } from "../core/trace.ts";
import { healthResponse, LIVE } from "./health.ts";
import { type Endpoint, invoke, type InvokeDeps } from "./invoke.ts";
import { HttpError, problemResponse, toHttpError } from "./problem.ts";
import { parseEnvelope, type RouteDef, type RouteTable } from "./router.ts";
import { readJsonBody } from "./body.ts";

/** Answers an error its own way (a Response, or an HttpError), or leaves it to the mappers. */
export type ErrorHandler = (
  error: unknown,
  request: { req: Request; requestId: string },
) => Response | HttpError | undefined | void;

/** Everything one function's requests share, built once by defineFunction. */
export interface Pipeline extends InvokeDeps {
  name: string;
  cors: CorsPolicy;
  routes: RouteTable;
  /** Route endpoints, parallel to the route table's routes. */
  routeEndpoints: Map<RouteDef, Endpoint>;
  actions: Map<string, Endpoint>;
  /** When no action accepts `none`: a request without any credential is refused unread. */
  credentialModes: readonly AuthMode[] | null;
  ready: () => Promise<HealthBody>;
  bodyLimit: number;
  /** A bad environment: every request is answered 500 with it (and it is logged once). */
  envError: unknown;
  onError: ErrorHandler | undefined;
  /** The share of requests logged (env ACCESS_LOG at LOG_LEVEL info); 0: none. */
  accessLog: number;
  /** Span export, when configured. */
  spans: SpanExporter | null;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Serves one request. */
export async function handle(p: Pipeline, req: Request, info?: ServeInfo): Promise<Response> {
  // Sampled per request, before any work, so a logged request's duration is whole.
  const logged = p.accessLog > 0 && (p.accessLog >= 1 || Math.random() < p.accessLog);
  const started = logged ? performance.now() : 0;
  const startedAt = p.spans ? Date.now() : 0;
  const headers = req.headers;
  const given = headers.get("x-request-id");
  const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  const preflight = req.method === "OPTIONS";
  // With `*` the answer does not depend on the Origin: only a preflight reads it.
  const origin = p.cors.anyOrigin && !preflight ? null : headers.get("origin");
  const url = req.url;
  const state: RequestState = {
    req,
    url,
    path: subPath(pathOf(url), p.name),
    requestId,
    info,
    cors: p.cors.headersFor(origin),
    params: {},
    payload: undefined,
  };
  let res: Response;
  if (preflight) {
    const pre = preflightHeaders(p.cors, origin);
    res = pre ? new Response(null, { status: 204, headers: pre }) : problemResponse(
      new HttpError({ status: 403, code: "origin_not_allowed", detail: "Origin not allowed." }),
      requestId,
    );
  } else {
    try {
      res = await dispatch(p, state);
    } catch (thrown) {
      res = answerError(p, state, thrown);
    }
  }
  // Plain-data answers were built with these headers already (reading a built
  // response's headers back would cost the runtime's prepared answer).
  if (res !== state.answered) res = withCors(res, state.cors, requestId);
  if (logged) {
    const { method } = req;
    const durationMs = Math.round((performance.now() - started) * 100) / 100;
    p.log.info("request", {
      requestId,
      ...traceFields(requestTrace(state)),
      method,
      path: state.path,
      ...noted(state),
      status: res.status,
      durationMs,
    });
  }
  if (p.spans) {
    const flushed = p.spans.record({
      trace: requestTrace(state),
      name: `${req.method} ${state.path || "/"}`,
      kind: "server",
      startMs: startedAt,
      endMs: Date.now(),
      ...(res.status >= 500 ? { error: `status ${res.status}` } : {}),
      attributes: {
        "http.request.method": req.method,
        "http.response.status_code": res.status,
        "url.path": state.path || "/",
      },
    });
    if (flushed) p.waitUntil(flushed);
  }
  return res;
}

const healthAnswer = (state: RequestState, body: HealthBody) =>
  healthResponse(body, { ...state.cors, "x-request-id": state.requestId });

/** Health, readiness, a route, or the action named in the body. */
async function dispatch(p: Pipeline, state: RequestState): Promise<Response> {
  if (p.envError) throw p.envError;
  const { req, path } = state;
  if (req.method === "GET" || req.method === "HEAD") {
    // Built with the CORS headers and the request id already (see handle).
    if (path === "/health") return state.answered = healthAnswer(state, LIVE);
    if (path === "/ready") return state.answered = healthAnswer(state, await p.ready());
  }
  const matched = p.routes.match(req.method, path);
  if (matched && "route" in matched) {
    state.params = matched.params;
    return await invoke(p.routeEndpoints.get(matched.route)!, state, p);
  }
  if (matched && "allow" in matched) throw methodNotAllowed([...matched.allow, "OPTIONS"]);
  if (path === "" && p.actions.size > 0) {
    if (req.method !== "POST") throw methodNotAllowed(["POST", "OPTIONS"]);
    // Read once here; invoke's cached-token lookup uses it.
    const authorization = state.authorization = req.headers.get("authorization");
    if (p.credentialModes && authorization === null && req.headers.get("apikey") === null) {
      throw missingCredentials(p.credentialModes);
    }
    const envelope = parseEnvelope(await readJsonBody(req, p.bodyLimit));
    state.action = envelope.action;
    state.payload = envelope.payload;
    const endpoint = p.actions.get(envelope.action);
    if (!endpoint) {
      const detail = `No action named "${envelope.action}".`;
      throw new HttpError({ status: 404, code: "unknown_action", detail });
    }
    // Awaited: returning an async call's promise costs V8 two more microtask turns.
    return await invoke(endpoint, state, p);
  }
  throw new HttpError({ status: 404, code: "not_found", detail: `No route for ${path || "/"}.` });
}

/** The function's `onError` first, then the mappers; server faults are logged with the request id. */
function answerError(p: Pipeline, state: RequestState, thrown: unknown): Response {
  let custom: Response | HttpError | undefined | void;
  try {
    custom = p.onError?.(thrown, state);
  } catch (failure) {
    p.log.error("onError failed", {
      requestId: state.requestId,
      ...traceFields(requestTrace(state)),
      ...errorFields(failure),
    });
  }
  if (custom instanceof Response) return custom;
  const error = custom instanceof HttpError ? custom : toHttpError(thrown);
  if (error.status >= 500) {
    p.log.error("request failed", {
      requestId: state.requestId,
      ...traceFields(requestTrace(state)),
      path: state.path,
      ...noted(state),
      ...errorFields(error.cause ?? thrown),
    });
  }
  return problemResponse(error, state.requestId);
}

/** The action and auth mode, in the order and shape the logs have always had them. */
function noted(state: RequestState): { action?: string; auth?: string } {
  const out: { action?: string; auth?: string } = {};
  if (state.action !== undefined) out.action = state.action;
  if (state.auth !== undefined) out.auth = state.auth;
  return out;
}

function methodNotAllowed(allow: string[]): HttpError {
  return new HttpError({
    status: 405,
    code: "method_not_allowed",
    detail: `Use ${allow.join(", ")}.`,
    headers: { allow: [...new Set(allow)].join(", ") },
  });
}

/** Strips `/functions/v1` and `/<name>` so routes see only the sub-path ("" for the root). */
function subPath(pathname: string, name: string): string {
  let p = pathname.startsWith("/functions/v1/") ? pathname.slice(13) : pathname;
  if (p === `/${name}` || p.startsWith(`/${name}/`)) p = p.slice(name.length + 1);
  return p === "/" ? "" : p;
}

/** The path of an absolute URL string, without building a URL object (hot path). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q !== -1) end = q;
  const h = url.indexOf("#", start);
  if (h !== -1 && h < end) end = h;
  return url.slice(start, end);
}
