/** Cold-start part: `zod/mini` alone (with the English messages `zod` loads by default). */
import * as z from "npm:zod@4/mini";
import en from "npm:zod@4/v4/locales/en.js";

z.config(en());
const echo = z.object({ message: z.string().check(z.minLength(1), z.maxLength(1000)) });
const ok = echo.safeParse({ message: "hello" }).success;

export default {
  fetch: () => new Response(String(ok)),
};
