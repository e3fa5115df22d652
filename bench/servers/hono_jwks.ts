/**
 * Peer: the stack Supabase users most often pick instead. Hono (its default
 * RegExpRouter) with its built-in `cors()` and `requestId()` middleware, its
 * `jwk()` middleware verifying the ES256 bearer token against the project's
 * JWKS (Hono's documented way; it verifies on every request, keys given
 * in-process so there is no JWKS fetch), and `@hono/zod-validator` with the same
 * zod schema. Same echo action, same response envelope.
 */
import { Hono } from "npm:hono@4";
import { cors } from "npm:hono@4/cors";
import { jwk } from "npm:hono@4/jwk";
import { requestId } from "npm:hono@4/request-id";
import { zValidator } from "npm:@hono/zod-validator@0.9";
import { z } from "npm:zod@4";

const { keys } = JSON.parse(Deno.env.get("SUPABASE_JWKS")!);
const body = z.object({
  action: z.literal("echo"),
  payload: z.object({ message: z.string().min(1).max(1000) }),
});

const app = new Hono();
app.use(cors({
  origin: "*",
  exposeHeaders: ["Retry-After", "RateLimit", "RateLimit-Policy", "X-Request-Id", "Content-Length"],
}));
app.use(requestId());
app.post(
  "/",
  jwk({ keys, alg: ["ES256", "RS256"], verification: { aud: "authenticated" } }),
  zValidator("json", body),
  (c) => c.json({ data: c.req.valid("json").payload }),
);

// Hono's Deno guide: `Deno.serve(app.fetch)`; `deno serve` takes the same fetch as a default export.
export default { fetch: app.fetch };
