/**
 * Peer: the limit of our own HTTP contract. A hand-written `Deno.serve` handler
 * that does only what `api`'s echo must do, with no framework:
 * - the same response headers as `api` for the same request (CORS
 *   allow-origin + expose-headers with `Vary: Origin` when an allowlist is
 *   configured; x-request-id, the caller's when it is well-formed; content-type);
 * - the bearer token looked up in a Map of already-verified tokens (filled by
 *   one jose verification against the JWKS the first time; never used past exp);
 * - a JSON parse (`req.json()`, the runtime's one-op fast path, which turns invalid
 *   UTF-8 into U+FFFD where `api` answers 400), the action name, the same zod
 *   schema, the JSON response.
 * It skips what the contract adds for other requests (413/415 checks, problem+json
 * errors beyond a bare status, logging), so it is a strict upper bound.
 */
import { createLocalJWKSet, type JWTPayload, jwtVerify } from "npm:jose@6";
import { z } from "npm:zod@4";

const jwks = createLocalJWKSet(JSON.parse(Deno.env.get("SUPABASE_JWKS")!));
const echo = z.object({ message: z.string().min(1).max(1000) });
const verified = new Map<string, JWTPayload>();
const EXPOSE = "Retry-After, RateLimit, RateLimit-Policy, X-Request-Id, Content-Length";
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const origins = (Deno.env.get("ALLOWED_ORIGINS") ?? "*").split(",").map((s) => s.trim());
const anyOrigin = origins.includes("*");

async function claims(token: string): Promise<JWTPayload | null> {
  const hit = verified.get(token);
  if (hit && (hit.exp ?? Infinity) > Date.now() / 1000) return hit;
  try {
    const { payload } = await jwtVerify(token, jwks, {
      algorithms: ["ES256", "RS256"],
      audience: "authenticated",
    });
    verified.set(token, payload);
    return payload;
  } catch {
    return null;
  }
}

/**
 * The response with the contract's headers, built the cheapest way Deno offers:
 * a body with only a content-type takes the runtime's static fast path, and the
 * other headers are then set on it (cheaper than a record of four, which makes
 * the runtime validate every value and prepare a native header list).
 */
function respond(req: Request, status: number, body: string): Response {
  const res = new Response(body, { status, headers: { "content-type": "application/json" } });
  const h = res.headers;
  const given = req.headers.get("x-request-id");
  h.set("x-request-id", given && REQUEST_ID.test(given) ? given : crypto.randomUUID());
  if (anyOrigin) {
    h.set("access-control-allow-origin", "*");
    h.set("access-control-expose-headers", EXPOSE);
  } else {
    const origin = req.headers.get("origin");
    h.set("vary", "Origin");
    if (origin && origins.includes(origin)) {
      h.set("access-control-allow-origin", origin);
      h.set("access-control-expose-headers", EXPOSE);
    }
  }
  return res;
}

export default {
  async fetch(req: Request): Promise<Response> {
    const auth = req.headers.get("authorization");
    const user = auth?.startsWith("Bearer ") ? await claims(auth.slice(7)) : null;
    if (!user) return respond(req, 401, '{"status":401}');
    let body: { action?: unknown; payload?: unknown };
    try {
      body = await req.json();
    } catch {
      return respond(req, 400, '{"status":400}');
    }
    if (body?.action !== "echo") return respond(req, 404, '{"status":404}');
    const parsed = echo.safeParse(body.payload);
    if (!parsed.success) return respond(req, 422, '{"status":422}');
    return respond(req, 200, JSON.stringify({ data: parsed.data }));
  },
};
