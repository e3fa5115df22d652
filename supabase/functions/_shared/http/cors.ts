/**
 * CORS (docs/architecture.md, "HTTP"): preflight answered before auth, an origin allowlist with
 * `Vary: Origin`, the headers Supabase clients send, and CORS headers on every
 * response, errors and 500s included.
 */
/**
 * The headers Supabase clients send (`@supabase/supabase-js/cors`'s list, which a
 * test keeps this in sync with) plus x-region and x-request-id. Written out
 * rather than imported: loading an npm package at start-up costs cold-start time.
 */
export const ALLOWED_HEADERS = [
  "authorization",
  "x-client-info",
  "apikey",
  "content-type",
  "x-retry-count",
  "traceparent",
  "tracestate",
  "baggage",
  "x-region",
  "x-request-id",
].join(", ");

/** Headers a browser script may read from our responses. */
const EXPOSED_HEADERS = "Retry-After, RateLimit, RateLimit-Policy, X-Request-Id, Content-Length";

const ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/** A compiled origin policy. */
export interface CorsPolicy {
  /** True for `*`: the headers do not depend on the request's Origin (which need not be read). */
  readonly anyOrigin: boolean;
  /** The headers to add to a response for this request's Origin. */
  headersFor(origin: string | null): Record<string, string>;
  /** True when a request from this origin may read responses. */
  allows(origin: string | null): boolean;
}

/**
 * Compiles an allowlist. `*` allows any origin (no credentials mode);
 * entries like `https://*.example.com` allow subdomains.
 */
export function corsPolicy(allowedOrigins: string[]): CorsPolicy {
  const any = allowedOrigins.includes("*");
  const exact = new Set(allowedOrigins.filter((o) => !o.includes("*")));
  const wildcards = allowedOrigins.filter((o) => o.includes("*") && o !== "*").map((o) =>
    new RegExp("^" + o.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace("*", "[^./]+") + "$")
  );
  const allows = (origin: string | null) =>
    origin !== null && (any || exact.has(origin) || wildcards.some((re) => re.test(origin)));
  const anyHeaders: Record<string, string> = Object.freeze({
    "access-control-allow-origin": "*",
    "access-control-expose-headers": EXPOSED_HEADERS,
  });
  const varyOnly: Record<string, string> = Object.freeze({ vary: "Origin" });
  return {
    anyOrigin: any,
    allows,
    headersFor(origin) {
      if (any) return anyHeaders;
      if (!allows(origin)) return varyOnly;
      return {
        "access-control-allow-origin": origin!,
        "access-control-expose-headers": EXPOSED_HEADERS,
        vary: "Origin",
      };
    },
  };
}

/** Answers an OPTIONS preflight: 204 for an allowed origin, 403 problem otherwise. */
export function preflightHeaders(policy: CorsPolicy, origin: string | null): Headers | null {
  if (!policy.allows(origin)) return null;
  const headers = new Headers(policy.headersFor(origin));
  headers.set("access-control-allow-methods", ALLOWED_METHODS);
  headers.set("access-control-allow-headers", ALLOWED_HEADERS);
  headers.set("access-control-max-age", "86400");
  headers.append("vary", "Access-Control-Request-Headers");
  return headers;
}

/**
 * Adds the CORS headers and the request id to a response (mutable headers are
 * reused). Setting them on a built response is the cheap way in Deno: a
 * `Response` made with only a `content-type` takes the runtime's static fast
 * path, and a few `set`s on it cost less than building the runtime's native
 * header list from a record of four (measured in docs/benchmarks.md).
 */
export function withCors(
  res: Response,
  headers: Record<string, string>,
  requestId: string,
): Response {
  try {
    return setAll(res, headers, requestId);
  } catch {
    // Immutable headers (e.g. a fetched Response): copy.
    return setAll(new Response(res.body, res), headers, requestId);
  }
}

function setAll(res: Response, headers: Record<string, string>, requestId: string): Response {
  const h = res.headers;
  for (const k in headers) h.set(k, headers[k]!);
  h.set("x-request-id", requestId);
  return res;
}
