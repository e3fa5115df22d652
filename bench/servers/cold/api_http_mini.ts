/** Cold-start part: `api` importing only `_shared/http/mod.ts`, schemas in `zod/mini`. */
import * as z from "npm:zod@4/mini";
import en from "npm:zod@4/v4/locales/en.js";
import { action, defineFunction } from "../../../supabase/functions/_shared/http/mod.ts";

z.config(en());

export default defineFunction({
  name: "api",
  auth: "user",
  actions: {
    echo: action({
      auth: ["user", "publishable"],
      input: z.object({ message: z.string().check(z.minLength(1), z.maxLength(1000)) }),
      handler: ({ message }) => ({ message }),
    }),
  },
});
