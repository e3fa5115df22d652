/**
 * The local API gateway on 127.0.0.1:54321, shaped like the hosted one:
 * `/functions/v1/<name>[/...]` goes to that function with the path rewritten
 * to start at `/<name>`; `/auth/v1/.well-known/jwks.json` serves the local
 * signing key; everything else is a 404 problem.
 */
import type { JWK } from "npm:jose@6";
import type { FunctionPool } from "../functions/mod.ts";
import { jwtGate } from "./jwt_gate.ts";
import { gatewayProblem } from "./problem.ts";
import { proxyToFunction } from "./proxy.ts";
import type { ResponseStreaming } from "./tcp_front.ts";

/** What the gateway needs. */
export interface GatewayDeps {
  pool: FunctionPool;
  jwks: { keys: JWK[] };
  functionTimeoutMs: number;
  log: (line: string) => void;
  /** Where each request's access line goes (default: `log`); gets the request id too. */
  requestLog?: (line: string, requestId: string) => void;
  /** False while the stack is still starting: requests get 503 + Retry-After. */
  isReady: () => boolean;
}

const FUNCTIONS_PREFIX = "/functions/v1/";

/** The path decoded, or null when a `%` escape is malformed or not UTF-8 (a client error). */
function decodePath(path: string): string | null {
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}

/** Builds the gateway's request handler. */
export function createGateway(
  deps: GatewayDeps,
): (req: Request, streaming?: ResponseStreaming) => Promise<Response> {
  const verifyJwt = jwtGate(deps.jwks);
  const jwksBody = JSON.stringify(deps.jwks);

  async function route(
    req: Request,
    url: URL,
    requestId: string,
    streaming: ResponseStreaming | undefined,
  ): Promise<Response> {
    if (url.pathname === "/auth/v1/.well-known/jwks.json") return jwksResponse(jwksBody);
    if (!url.pathname.startsWith(FUNCTIONS_PREFIX)) {
      return gatewayProblem({
        status: 404,
        code: "not_found",
        title: "Not Found",
        detail: `the local stack serves /functions/v1/<name> and /auth/v1/.well-known/jwks.json`,
      }, requestId);
    }
    if (!deps.isReady()) {
      return gatewayProblem({
        status: 503,
        code: "stack_starting",
        title: "Service Unavailable",
        detail: "the local stack is still starting",
        headers: { "retry-after": "1" },
      }, requestId);
    }
    return await toFunction(deps, verifyJwt, { req, url, requestId, streaming });
  }

  return async (req, streaming) => {
    const started = performance.now();
    const url = new URL(req.url);
    const requestId = req.headers.get("x-request-id") ?? crypto.randomUUID();
    let res: Response;
    try {
      res = await route(req, url, requestId, streaming);
    } catch (error) {
      // Deno.serve's own 500 would carry no CORS headers and no request id.
      deps.log(
        `gateway error on ${req.method} ${url.pathname}: ${(error as Error)?.stack ?? error}`,
      );
      res = gatewayProblem({
        status: 500,
        code: "internal_error",
        detail: "the local gateway failed on this request; see the dev server log",
      }, requestId);
    }
    const ms = (performance.now() - started).toFixed(1);
    const line = `${req.method} ${url.pathname} ${res.status} ${ms} ms`;
    if (deps.requestLog) deps.requestLog(line, requestId);
    else deps.log(line);
    return res;
  };
}

/** The local signing key's JWKS, cacheable and readable from any origin. */
function jwksResponse(body: string): Response {
  return new Response(body, {
    headers: {
      "content-type": "application/json",
      "cache-control": "public, max-age=600",
      "access-control-allow-origin": "*",
    },
  });
}

/** One request under `/functions/v1/`, as the router sees it. */
interface FunctionRequest {
  req: Request;
  url: URL;
  requestId: string;
  streaming: ResponseStreaming | undefined;
}

/** `/functions/v1/<name>[/...]`: the named function's process, past its `verify_jwt` gate. */
async function toFunction(
  deps: GatewayDeps,
  verifyJwt: ReturnType<typeof jwtGate>,
  { req, url, requestId, streaming }: FunctionRequest,
): Promise<Response> {
  const rest = url.pathname.slice(FUNCTIONS_PREFIX.length);
  const decoded = decodePath(rest);
  if (decoded === null) {
    return gatewayProblem({
      status: 400,
      code: "malformed_path",
      detail: "the path has a malformed percent-encoding (each % must start a valid " +
        "UTF-8 byte sequence of %XX escapes)",
    }, requestId);
  }
  const name = decoded.split("/")[0] ?? "";
  const spec = deps.pool.spec(name);
  if (!spec) return functionNotFound(name, requestId);
  // Before a worker is taken, as the platform checks the JWT before it boots one.
  if (spec.verifyJwt && req.method !== "OPTIONS") {
    const gate = await verifyJwt(req);
    if (!gate.ok) {
      return gatewayProblem({
        status: 401,
        code: gate.code,
        title: "Unauthorized",
        detail: `${gate.detail} (verify_jwt = true for "${name}" in config.toml)`,
      }, requestId);
    }
  }
  const acquired = await deps.pool.acquire(name);
  if (acquired.kind === "unknown") return functionNotFound(name, requestId);
  if (acquired.kind === "failed") {
    return gatewayProblem({
      status: 503,
      code: "function_unavailable",
      title: "Service Unavailable",
      detail: `function "${name}" failed to start; see the dev server log`,
      headers: { "retry-after": "1" },
    }, requestId);
  }
  return await proxyToFunction(req, acquired.process, {
    pathAndQuery: `/${rest}${url.search}`,
    timeoutMs: deps.functionTimeoutMs,
    requestId,
    streaming,
  });
}

function functionNotFound(name: string, requestId: string): Response {
  return gatewayProblem({
    status: 404,
    code: "function_not_found",
    title: "Not Found",
    detail: `no function named "${name}" (see supabase/functions and config.toml)`,
  }, requestId);
}
