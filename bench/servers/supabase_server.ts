/**
 * Peer: the same work as `api`'s echo written with Supabase's official
 * `@supabase/server` (`withSupabase({ auth: "user" })`) and zod.
 */
import { withSupabase } from "npm:@supabase/server@1";
import { z } from "npm:zod@4";

const schema = z.object({ message: z.string().min(1).max(1000) });

export default {
  fetch: withSupabase({ auth: "user" }, async (req) => {
    const body = await req.json();
    const parsed = schema.safeParse(body.payload);
    if (!parsed.success) return Response.json({ error: "invalid" }, { status: 422 });
    return Response.json({ data: parsed.data });
  }),
};
