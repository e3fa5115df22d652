/**
 * The one path every action and route call takes: authenticate, read the input,
 * build the context, enforce the rate limit, run the handler, answer. Actions
 * and routes differ only in how the input is read and how the handler is
 * called, which {@link endpointOfAction} and {@link endpointOfRoute} settle once,
 * when the function is defined.
 */
import type { Authenticator, AuthMode } from "../auth/authenticate.ts";
import type { RateLimiter, RateLimitPolicy } from "../resilience/rate_limit/limiter.ts";
import { readJsonBody } from "./body.ts";
import { withCors } from "./cors.ts";
import {
  type ContextDeps,
  type HandlerContext,
  RequestContext,
  type RequestState,
} from "./context.ts";
import type { ActionDef, RouteDef } from "./router.ts";
import { parseInput } from "./validation.ts";

/** An action or a route, reduced to what a call needs. */
export interface Endpoint {
  /** The rate limit's name when the policy gives none: the action, or `METHOD /path`. */
  readonly name: string;
  readonly auth: readonly AuthMode[];
  /** The endpoint's own limit, else the function's. */
  readonly rateLimit: RateLimitPolicy | undefined;
  /** Reads and validates the input; runs after authentication. */
  input(state: RequestState): unknown;
  call(input: unknown, ctx: HandlerContext): unknown;
}

/** What invoking needs from the function. */
export interface InvokeDeps extends ContextDeps {
  authenticator: Authenticator;
  rateLimiter: RateLimiter | null;
}

/** The endpoint of an action: the input is the envelope's payload (errors point below `/payload`). */
export function endpointOfAction(
  name: string,
  def: ActionDef,
  auth: readonly AuthMode[],
  rateLimit: RateLimitPolicy | undefined,
): Endpoint {
  return {
    name,
    auth,
    rateLimit: def.rateLimit ?? rateLimit,
    input: (state) => parseInput(def.input, state.payload, "/payload"),
    call: (input, ctx) => def.handler(input, ctx),
  };
}

/** The endpoint of a route: the input is the JSON body, when the route declares a schema. */
export function endpointOfRoute(
  def: RouteDef,
  auth: readonly AuthMode[],
  rateLimit: RateLimitPolicy | undefined,
  bodyLimit: number,
): Endpoint {
  const schema = def.input;
  return {
    name: `${def.method} ${def.path}`,
    auth,
    rateLimit: def.rateLimit ?? rateLimit,
    input: schema
      ? async (state) => parseInput(schema, await readJsonBody(state.req, bodyLimit), "")
      : () => undefined,
    call: (input, ctx) => def.handler(Object.assign(ctx, { input })),
  };
}

/** Calls `endpoint` for the request in `state`; every failure is thrown for the one problem exit. */
export async function invoke(
  endpoint: Endpoint,
  state: RequestState,
  deps: InvokeDeps,
): Promise<Response> {
  // A caller reusing a verified token is known without a promise; anyone else
  // goes through authenticate (verification, API keys, the refusals).
  const auth = deps.authenticator.cachedUser?.(
    state.authorization !== undefined
      ? state.authorization
      : (state.authorization = state.req.headers.get("authorization")),
    endpoint.auth,
  ) ?? await deps.authenticator.authenticate(state.req, endpoint.auth);
  state.auth = auth.mode;
  // Actions validate and most handlers answer synchronously: awaiting only real
  // promises saves a microtask turn each on every request.
  let input = endpoint.input(state);
  if (isThenable(input)) input = await input;
  const ctx = new RequestContext(state, auth, deps);
  const policy = endpoint.rateLimit;
  const limitHeaders = policy && deps.rateLimiter
    ? await deps.rateLimiter(policy, ctx, policy.name ?? endpoint.name)
    : undefined;
  let value = endpoint.call(input, ctx);
  if (isThenable(value)) value = await value;
  let res: Response;
  if (value instanceof Response) {
    res = value; // the pipeline adds the CORS and request-id headers
  } else {
    // Built with only a content-type (the runtime's fast path), then the CORS and
    // request-id headers set (cors.ts), and marked so the pipeline does not again.
    res = withCors(
      new Response(JSON.stringify({ data: value ?? null }), JSON_INIT),
      state.cors,
      state.requestId,
    );
    state.answered = res;
  }
  if (limitHeaders) { for (const k in limitHeaders) res.headers.set(k, limitHeaders[k]!); }
  return res;
}

const JSON_INIT: ResponseInit = Object.freeze({
  headers: Object.freeze({ "content-type": "application/json" }),
});

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
