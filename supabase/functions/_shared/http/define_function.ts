/**
 * The entry point every function is built from: CORS, request ids, health and
 * readiness, authentication, action/route dispatch, rate limits, problem+json
 * errors and access logs. This file only wires them (pipeline.ts serves a
 * request, invoke.ts calls an endpoint).
 *
 * @example
 * import { z } from "npm:zod@4";
 * import { action, defineFunction } from "../_shared/mod.ts";
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
import type { AuthMode } from "../auth/authenticate.ts";
import { createDatabase, type Database } from "../core/db.ts";
import { type Env, readEnv } from "../core/env.ts";
import { createLogger, errorFields, type Logger } from "../core/log.ts";
import { otlpExporter, type SpanExporter } from "../core/otlp.ts";
import { createReadiness, postgresCheck, type ReadinessCheck } from "../core/readiness.ts";
import { defaultWaitUntil } from "../core/runtime.ts";
import type { Clock } from "../core/time.ts";
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimitPolicy,
} from "../resilience/rate_limit/limiter.ts";
import { createAuthenticator } from "./authenticator.ts";
import { DEFAULT_BODY_LIMIT } from "./body.ts";
import type { ServeInfo } from "./context.ts";
import { corsPolicy } from "./cors.ts";
import { endpointOfAction, endpointOfRoute } from "./invoke.ts";
import { type ErrorHandler, handle, type Pipeline } from "./pipeline.ts";
import { type ActionDef, compileRoutes, type RouteDef } from "./router.ts";

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
  /** Answers errors its own way before the mappers of problem.ts (like hono's `app.onError`). */
  onError?: ErrorHandler;
}

/** Injectable dependencies (tests pass their own). */
export interface FunctionDeps {
  env: Env;
  fetch: typeof fetch;
  now: Clock;
  log: Logger;
  db: Database;
  /** Declared rate limits are enforced in Postgres (one statement per decision); null: off. */
  rateLimiter: RateLimiter | null;
  waitUntil: (promise: Promise<unknown>) => void;
  /** Span export (OTLP), when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; null: off. */
  spans: SpanExporter | null;
}

/** A deployable function: `export default defineFunction(...)`. */
export interface EdgeFunction {
  fetch(req: Request, info?: ServeInfo): Promise<Response>;
  /** Releases the database pool (tests, graceful shutdown). */
  close(): Promise<void>;
}

const asList = (a: AuthMode | AuthMode[] | undefined, fallback: AuthMode[]): AuthMode[] =>
  a === undefined ? fallback : Array.isArray(a) ? a : [a];

/** Builds the `fetch` handler of a function. */
export function defineFunction(spec: FunctionSpec, overrides: Partial<FunctionDeps> = {}) {
  const { deps, envError } = resolveDeps(spec.name, overrides);
  const defaultAuth = asList(spec.auth, ["user"]);
  const bodyLimit = spec.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const actions = new Map(
    Object.entries(spec.actions ?? {}).map(([name, def]) => [
      name,
      endpointOfAction(name, def, asList(def.auth, defaultAuth), spec.rateLimit),
    ]),
  );
  const routes = spec.routes ?? [];
  // Which action a request names is only known from its body; when no action
  // accepts `none`, a request without any credential is refused before the
  // body is read, so anonymous callers cannot make us read and parse 1 MiB.
  const actionModes = [...actions.values()].map((endpoint) => endpoint.auth);
  const anonymousActions = actionModes.some((modes) => modes.includes("none"));
  const extra = typeof spec.readiness === "function"
    ? spec.readiness(deps.db)
    : (spec.readiness ?? []);
  const pipeline: Pipeline = {
    ...deps,
    name: spec.name,
    authenticator: createAuthenticator(deps.env, { fetch: deps.fetch, now: deps.now }),
    cors: corsPolicy(deps.env.allowedOrigins),
    routes: compileRoutes(routes),
    routeEndpoints: new Map(routes.map((r) => [
      r,
      endpointOfRoute(r, asList(r.auth, defaultAuth), spec.rateLimit, bodyLimit),
    ])),
    actions,
    credentialModes: anonymousActions ? null : [...new Set(actionModes.flat())],
    ready: createReadiness(
      deps.env.dbUrl ? [postgresCheck(() => deps.db.sql()), ...extra] : extra,
      {
        now: deps.now,
        onError: (name, error) =>
          deps.log.warn("readiness check failed", { check: name, ...errorFields(error) }),
      },
    ),
    bodyLimit,
    envError,
    onError: spec.onError,
    accessLog: deps.log.enabled("info") ? deps.env.accessLogSample : 0,
  };
  return {
    close: () => deps.db.close(),
    fetch: (req: Request, info?: ServeInfo) => handle(pipeline, req, info),
  } satisfies EdgeFunction;
}

/** The defaults for what `overrides` leaves out; a bad environment is kept to answer with. */
function resolveDeps(name: string, overrides: Partial<FunctionDeps>) {
  let env: Env;
  let envError: unknown = null;
  try {
    env = overrides.env ?? readEnv();
  } catch (error) {
    // Answer every request with a 500 (and log why) instead of crashing the isolate.
    envError = error;
    env = readEnv(() => undefined);
  }
  const log = overrides.log ?? createLogger(env.logLevel, { function: name });
  if (envError) log.error("invalid environment", errorFields(envError));
  const db = overrides.db ?? createDatabase(env.dbUrl);
  const deps: FunctionDeps = {
    env,
    log,
    fetch: overrides.fetch ?? globalThis.fetch.bind(globalThis),
    now: overrides.now ?? Date.now,
    db,
    rateLimiter: overrides.rateLimiter === undefined
      ? createRateLimiter(db)
      : overrides.rateLimiter,
    waitUntil: overrides.waitUntil ?? defaultWaitUntil(log),
    spans: overrides.spans !== undefined
      ? overrides.spans
      : env.otlpEndpoint
      ? otlpExporter(env.otlpEndpoint, name, log)
      : null,
  };
  return { deps, envError };
}
