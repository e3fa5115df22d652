/**
 * The entry point every function is built from: CORS, request ids, health and
 * readiness, authentication, action/route dispatch, rate limits, problem+json
 * errors and access logs, composed into one `fetch` handler.
 *
 * @example
 * import { z } from "npm:zod@4";
 * import { action, defineFunction } from "../mod.ts";
 *
 * export default defineFunction({
 *   name: "hello",
 *   auth: ["user", "publishable"],
 *   actions: {
 *     greet: action({
 *       input: z.object({ name: z.string().min(1) }),
 *       handler: ({ name }) => ({ greeting: `Hello, ${name}!` }),
 *     }),
 *   },
 * });
 */
import {
  type AuthContext,
  type Authenticator,
  type AuthMode,
  createAuthenticator,
  hasCredential,
  missingCredentials,
} from "../auth/authenticate.ts";
import { readJsonBody } from "./body.ts";
import { clientIp } from "../resilience/rate_limit/client_ip.ts";
import { corsPolicy, preflightHeaders, withCors } from "./cors.ts";
import { createDatabase, type Database, databaseError } from "../core/db.ts";
import { type Env, readEnv } from "../core/env.ts";
import { HttpError, problemResponse, toHttpError } from "./problem.ts";
import { circuitOpenHttpError } from "../resilience/breaker/readiness.ts";
import { createRateLimiter } from "../resilience/rate_limit/limiter.ts";
import {
  createReadiness,
  healthResponse,
  LIVE,
  postgresCheck,
  type ReadinessCheck,
} from "../core/readiness.ts";
import { createLogger, errorFields, type Logger } from "../core/log.ts";
import {
  type ActionDef,
  compileRoutes,
  type HandlerContext,
  parseEnvelope,
  parseInput,
  type RateLimitPolicy,
  type RouteDef,
} from "./router.ts";

/** What a function declares. */
export interface FunctionSpec {
  /** The function's folder name; the path below `/<name>` is what routes match. */
  name: string;
  /** Default auth for actions and routes that declare none (default: `user`). */
  auth?: AuthMode | AuthMode[];
  actions?: Record<string, ActionDef>;
  routes?: RouteDef[];
  /** Extra readiness checks; a Postgres check is added when a database URL is set. */
  readiness?: ReadinessCheck[] | ((db: Database) => ReadinessCheck[]);
  /** Default rate limit for every action and route that declares none. */
  rateLimit?: RateLimitPolicy;
  bodyLimitBytes?: number;
}

/** Enforces a rate limit; returns headers for the response or throws a 429 HttpError. */
export type RateLimiter = (
  policy: RateLimitPolicy,
  ctx: HandlerContext,
  name: string,
) => Promise<Record<string, string> | void>;

/** Injectable dependencies (tests pass their own). */
export interface FunctionDeps {
  env: Env;
  fetch: typeof fetch;
  now: () => number;
  log: Logger;
  db: Database;
  rateLimiter: RateLimiter | null;
  waitUntil: (promise: Promise<unknown>) => void;
}

/** What `Deno.serve` passes beside the request; only the peer address is read. */
export interface ServeInfo {
  remoteAddr?: { hostname?: string };
}

/** A deployable function: `export default defineFunction(...)`. */
export interface EdgeFunction {
  fetch(req: Request, info?: ServeInfo): Promise<Response>;
  /** Releases the database pool (tests, graceful shutdown). */
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function defaultWaitUntil(log: Logger): (p: Promise<unknown>) => void {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil?(p: Promise<unknown>): void } })
    .EdgeRuntime;
  return (promise) => {
    const guarded = promise.catch((error) =>
      log.error("background task failed", errorFields(error))
    );
    if (runtime?.waitUntil) runtime.waitUntil(guarded);
  };
}

/** Strips `/functions/v1` and `/<name>` so routes see only the sub-path ("" for the root). */
function subPath(pathname: string, name: string): string {
  let p = pathname.startsWith("/functions/v1/") ? pathname.slice(13) : pathname;
  if (p === `/${name}` || p.startsWith(`/${name}/`)) p = p.slice(name.length + 1);
  return p === "/" ? "" : p;
}

const asList = (a: AuthMode | AuthMode[] | undefined, fallback: AuthMode[]): AuthMode[] =>
  a === undefined ? fallback : Array.isArray(a) ? a : [a];

/** Builds the `fetch` handler of a function. */
export function defineFunction(spec: FunctionSpec, overrides: Partial<FunctionDeps> = {}) {
  let env: Env;
  let envError: unknown = null;
  try {
    env = overrides.env ?? readEnv();
  } catch (error) {
    // Answer every request with a 500 (and log why) instead of crashing the isolate.
    envError = error;
    env = readEnv(() => undefined);
  }
  const log = overrides.log ?? createLogger(env.logLevel, { function: spec.name });
  if (envError) log.error("invalid environment", errorFields(envError));
  const deps: FunctionDeps = {
    env,
    log,
    fetch: overrides.fetch ?? globalThis.fetch.bind(globalThis),
    now: overrides.now ?? Date.now,
    db: overrides.db ?? createDatabase(env.dbUrl),
    rateLimiter: null,
    waitUntil: overrides.waitUntil ?? defaultWaitUntil(log),
  };
  // Declared rate limits are enforced in Postgres (one statement per decision);
  // pass `rateLimiter: null` to turn enforcement off.
  deps.rateLimiter = overrides.rateLimiter === undefined
    ? createRateLimiter(deps.db)
    : overrides.rateLimiter;
  const cors = corsPolicy(env.allowedOrigins);
  const auth: Authenticator = createAuthenticator(env, { fetch: deps.fetch, now: deps.now });
  const defaultAuth = asList(spec.auth, ["user"]);
  const routes = compileRoutes(spec.routes ?? []);
  const actions = new Map(Object.entries(spec.actions ?? {}));
  // Which action a request names is only known from its body; when no action
  // accepts `none`, a request without any credential is refused before the
  // body is read, so anonymous callers cannot make us read and parse 1 MiB.
  const actionModes = [...actions.values()].map((d) => asList(d.auth, defaultAuth));
  const anonymousActions = actionModes.some((modes) => modes.includes("none"));
  const credentialModes = [...new Set(actionModes.flat())];
  const extra = typeof spec.readiness === "function"
    ? spec.readiness(deps.db)
    : (spec.readiness ?? []);
  const ready = createReadiness(
    env.dbUrl ? [postgresCheck(() => deps.db.sql()), ...extra] : extra,
    {
      now: deps.now,
      onError: (name, error) =>
        log.warn("readiness check failed", { check: name, ...errorFields(error) }),
    },
  );
  const bodyLimit = spec.bodyLimitBytes ?? 1024 * 1024;
  const accessLog = log.enabled("info");

  async function dispatch(
    req: Request,
    url: string,
    responseHeaders: Record<string, string>,
    path: string,
    requestId: string,
    note: { action?: string; auth?: string },
    info: ServeInfo | undefined,
  ): Promise<{ res: Response; extraHeaders?: Record<string, string> }> {
    if (envError) throw envError;
    if (req.method === "GET" || req.method === "HEAD") {
      if (path === "/health") return { res: healthResponse(LIVE) };
      if (path === "/ready") return { res: healthResponse(await ready()) };
    }
    const context = (authCtx: AuthContext, params: Record<string, string>): HandlerContext =>
      new RequestContext(req, url, requestId, env, log, authCtx, params, deps, info);

    const matched = routes.match(req.method, path);
    if (matched && "route" in matched) {
      const r = matched.route;
      const authCtx = await auth.authenticate(req, asList(r.auth, defaultAuth));
      note.auth = authCtx.mode;
      const input = r.input
        ? parseInput(r.input, await readJsonBody(req, bodyLimit), "")
        : undefined;
      const ctx = context(authCtx, matched.params);
      const headers = r.rateLimit ?? spec.rateLimit
        ? await limit(r.rateLimit, ctx, `${r.method} ${r.path}`)
        : undefined;
      return {
        res: toResponse(await r.handler(Object.assign(ctx, { input })), responseHeaders),
        extraHeaders: headers,
      };
    }
    if (matched && "allow" in matched) throw methodNotAllowed([...matched.allow, "OPTIONS"]);
    if (path === "" && actions.size > 0) {
      if (req.method !== "POST") throw methodNotAllowed(["POST", "OPTIONS"]);
      if (!anonymousActions && !hasCredential(req)) throw missingCredentials(credentialModes);
      const envelope = parseEnvelope(await readJsonBody(req, bodyLimit));
      note.action = envelope.action;
      const def = actions.get(envelope.action);
      if (!def) {
        throw new HttpError({
          status: 404,
          code: "unknown_action",
          detail: `No action named "${envelope.action}".`,
        });
      }
      const authCtx = await auth.authenticate(req, asList(def.auth, defaultAuth));
      note.auth = authCtx.mode;
      const input = parseInput(def.input, envelope.payload, "/payload");
      const ctx = context(authCtx, {});
      const headers = def.rateLimit ?? spec.rateLimit
        ? await limit(def.rateLimit, ctx, envelope.action)
        : undefined;
      return {
        res: toResponse(await def.handler(input, ctx), responseHeaders),
        extraHeaders: headers,
      };
    }
    throw new HttpError({ status: 404, code: "not_found", detail: `No route for ${path || "/"}.` });
  }

  async function limit(policy: RateLimitPolicy | undefined, ctx: HandlerContext, name: string) {
    const p = policy ?? spec.rateLimit;
    if (!p || !deps.rateLimiter) return undefined;
    return (await deps.rateLimiter(p, ctx, p.name ?? name)) ?? undefined;
  }

  return {
    close: () => deps.db.close(),
    async fetch(req: Request, info?: ServeInfo): Promise<Response> {
      const started = accessLog ? performance.now() : 0;
      const given = req.headers.get("x-request-id");
      const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
      const origin = req.headers.get("origin");
      const corsHeaders = cors.headersFor(origin);
      const url = req.url;
      const path = subPath(pathOf(url), spec.name);
      const responseHeaders = { ...corsHeaders, "x-request-id": requestId };
      const note: { action?: string; auth?: string } = {};
      let res: Response;
      if (req.method === "OPTIONS") {
        const pre = preflightHeaders(cors, origin);
        res = pre ? new Response(null, { status: 204, headers: pre }) : problemResponse(
          new HttpError({ status: 403, code: "origin_not_allowed", detail: "Origin not allowed." }),
          requestId,
        );
      } else {
        try {
          const out = await dispatch(req, url, responseHeaders, path, requestId, note, info);
          res = out.res;
          if (out.extraHeaders) {
            for (const k in out.extraHeaders) res.headers.set(k, out.extraHeaders[k]!);
          }
        } catch (thrown) {
          const error = toHttpError(circuitOpenHttpError(databaseError(thrown)));
          if (error.status >= 500) {
            log.error("request failed", {
              requestId,
              path,
              ...note,
              ...errorFields(error.cause ?? thrown),
            });
          }
          res = problemResponse(error, requestId);
        }
      }
      // Plain-data answers were built with these headers already.
      if (res.headers.get("x-request-id") !== requestId) res = withCors(res, responseHeaders);
      if (accessLog) {
        log.info("request", {
          requestId,
          method: req.method,
          path,
          ...note,
          status: res.status,
          durationMs: Math.round((performance.now() - started) * 100) / 100,
        });
      }
      return res;
    },
  } satisfies EdgeFunction;
}

/**
 * The handler context. A class, so `query` and `signal` are prototype getters:
 * parsing the URL or touching `req.signal` costs time and most handlers need neither.
 */
class RequestContext implements HandlerContext {
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly db: Database;
  constructor(
    readonly req: Request,
    readonly url: string,
    readonly requestId: string,
    readonly env: Env,
    readonly log: Logger,
    readonly auth: AuthContext,
    readonly params: Record<string, string>,
    deps: FunctionDeps,
    private readonly info: ServeInfo | undefined,
  ) {
    this.waitUntil = deps.waitUntil;
    this.db = deps.db;
  }
  get clientIp(): string {
    return clientIp(this.req, this.env.clientIp, this.info?.remoteAddr?.hostname);
  }
  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
  get signal(): AbortSignal {
    return this.req.signal;
  }
}

function methodNotAllowed(allow: string[]): HttpError {
  return new HttpError({
    status: 405,
    code: "method_not_allowed",
    detail: `Use ${allow.join(", ")}.`,
    headers: { allow: [...new Set(allow)].join(", ") },
  });
}

/** A handler's return value as a response: Responses pass through, anything else is `{data}`. */
function toResponse(value: unknown, headers: Record<string, string>): Response {
  if (value instanceof Response) return value;
  return new Response(JSON.stringify({ data: value ?? null }), {
    status: 200,
    headers: { "content-type": "application/json", ...headers },
  });
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
