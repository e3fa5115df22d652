/** Where this checkout lives: the default workdir of the stack and the base of the scripts' paths. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the folder holding deno.json, local/ and supabase/). */
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
