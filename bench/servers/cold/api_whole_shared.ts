/**
 * Cold-start part: the `api` function as it was first written, importing the
 * whole shared module (`_shared/mod.ts`: queue, resilience, ...) and `zod`.
 */
import { z } from "npm:zod@4";
import { action, defineFunction } from "../../../supabase/functions/_shared/mod.ts";

export default defineFunction({
  name: "api",
  auth: "user",
  actions: {
    echo: action({
      auth: ["user", "publishable"],
      input: z.object({ message: z.string().min(1).max(1000) }),
      handler: ({ message }) => ({ message }),
    }),
  },
});
