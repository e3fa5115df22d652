/**
 * Routing: action calls (`POST {"action","payload"}`, README.md "Adding a function") and
 * method/path routes for REST-style functions. Each action or route declares
 * its zod schema (`zod` or `zod/mini`), auth modes and optional rate limit; handlers get the parsed,
 * typed input.
 */
import type { AuthMode } from "../auth/authenticate.ts";
import type { RateLimitPolicy } from "../resilience/rate_limit/limiter.ts";
import type { HandlerContext } from "./context.ts";
import { HttpError } from "./problem.ts";
import type { Output, Schema } from "./validation.ts";

/** An action: schema, auth and handler. Use {@link action} for type inference. */
export interface ActionDef<S extends Schema = Schema> {
  input: S;
  auth?: AuthMode | AuthMode[];
  rateLimit?: RateLimitPolicy;
  handler(input: Output<S>, ctx: HandlerContext): unknown;
}

/** Declares an action with its payload type inferred from the schema. */
export function action<S extends Schema>(def: ActionDef<S>): ActionDef {
  return def as unknown as ActionDef;
}

/** A method/path route. `input` validates a JSON body when present. */
export interface RouteDef<S extends Schema = Schema> {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path below the function, e.g. `/notes/:id`. */
  path: string;
  input?: S;
  auth?: AuthMode | AuthMode[];
  rateLimit?: RateLimitPolicy;
  handler(ctx: HandlerContext & { input: Output<S> }): unknown;
}

/** Declares a route with its body type inferred from the schema. */
export function route<S extends Schema>(def: RouteDef<S>): RouteDef {
  return def as unknown as RouteDef;
}

/** The action envelope, checked by hand: it is on every request's hot path. */
export function parseEnvelope(body: unknown): { action: string; payload: unknown } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError({
      status: 400,
      code: "invalid_envelope",
      detail: 'The body must be a JSON object: {"action": "<name>", "payload": {...}}.',
    });
  }
  const { action, payload } = body as { action?: unknown; payload?: unknown };
  if (typeof action !== "string" || action === "") {
    throw new HttpError({
      status: 400,
      code: "missing_action",
      detail: 'The body needs a string "action".',
      errors: [{ pointer: "/action", detail: "Required string" }],
    });
  }
  return { action, payload: payload ?? {} };
}

/** A compiled route table. */
export interface RouteTable {
  /** The route and params for a path, or the allowed methods when only the method is wrong. */
  match(
    method: string,
    path: string,
  ): { route: RouteDef; params: Record<string, string> } | { allow: string[] } | null;
}

/** Compiles routes once; `:name` segments capture one path segment. */
export function compileRoutes(routes: RouteDef[]): RouteTable {
  const compiled = routes.map((r) => ({
    route: r,
    names: [...r.path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!),
    pattern: new RegExp(
      "^" + r.path.replace(/\/+$/, "").replace(/[.+?^${}()|[\]\\]/g, "\\$&")
        .replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "([^/]+)") +
        "/?$",
    ),
  }));
  return {
    match(method, path) {
      const allow: string[] = [];
      for (const c of compiled) {
        const m = c.pattern.exec(path);
        if (!m) continue;
        if (c.route.method !== method && !(method === "HEAD" && c.route.method === "GET")) {
          allow.push(c.route.method);
          continue;
        }
        const params: Record<string, string> = {};
        try {
          c.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
        } catch {
          throw new HttpError({ status: 400, code: "malformed_path", detail: "Bad % escape." });
        }
        return { route: c.route, params };
      }
      return allow.length ? { allow } : null;
    },
  };
}
