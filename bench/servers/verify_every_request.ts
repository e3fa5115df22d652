/** Peer: the common hand-written pattern, jose `jwtVerify` on every request + zod. */
import { createLocalJWKSet, jwtVerify } from "npm:jose@6";
import { z } from "npm:zod@4";

const jwks = createLocalJWKSet(JSON.parse(Deno.env.get("SUPABASE_JWKS")!));
const schema = z.object({ message: z.string().min(1).max(1000) });

export default {
  async fetch(req: Request): Promise<Response> {
    const token = req.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
    try {
      await jwtVerify(token, jwks, { algorithms: ["ES256"], audience: "authenticated" });
    } catch {
      return Response.json({ error: "unauthorized" }, { status: 401 });
    }
    const body = await req.json();
    const parsed = schema.safeParse(body.payload);
    if (!parsed.success) return Response.json({ error: "invalid" }, { status: 422 });
    return Response.json({ data: parsed.data });
  },
};
