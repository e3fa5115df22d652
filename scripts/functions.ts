/** Lists the deployable functions: folders of supabase/functions not starting with `_`. */
import { join } from "node:path";
import { PROJECT_ROOT } from "../local/project/mod.ts";

/** A function and the file `supabase functions deploy` would use as its entrypoint. */
export interface FunctionEntry {
  name: string;
  path: string;
}

/** Every function folder with an `index.ts`, sorted by name. */
export async function functionEntrypoints(
  root = join(PROJECT_ROOT, "supabase", "functions"),
): Promise<FunctionEntry[]> {
  const found: FunctionEntry[] = [];
  for await (const entry of Deno.readDir(root)) {
    if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    const path = join(root, entry.name, "index.ts");
    try {
      await Deno.stat(path);
      found.push({ name: entry.name, path });
    } catch { /* not a function folder */ }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}
