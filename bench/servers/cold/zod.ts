/** Cold-start part: `zod` (classic) alone, one schema built and used at start. */
import { z } from "npm:zod@4";

const echo = z.object({ message: z.string().min(1).max(1000) });
const ok = echo.safeParse({ message: "hello" }).success;

export default {
  fetch: () => new Response(String(ok)),
};
