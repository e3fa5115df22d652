/** Cold-start part: `api` importing only `_shared/http/mod.ts`, schemas in `zod` (classic). */
import { z } from "npm:zod@4";
import { action, defineFunction } from "../../../supabase/functions/_shared/http/mod.ts";

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
