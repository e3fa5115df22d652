/**
 * Cold-start part: the shared core's HTTP entry point (`_shared/http/mod.ts`) with
 * a hand-written schema instead of zod: what the core itself costs at start.
 */
import {
  action,
  defineFunction,
  type Schema,
} from "../../../supabase/functions/_shared/http/mod.ts";

const echo = {
  safeParse: (v: unknown) =>
    typeof (v as { message?: unknown })?.message === "string"
      ? { success: true as const, data: v }
      : { success: false as const, error: { issues: [{ path: ["message"], message: "string" }] } },
} as unknown as Schema;

export default defineFunction({
  name: "api",
  auth: ["user", "publishable"],
  actions: { echo: action({ input: echo, handler: (input) => input }) },
});
