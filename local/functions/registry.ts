/**
 * Which functions the local gateway serves: every folder of
 * `supabase/functions` not starting with `_` or `.`, minus `enabled = false`,
 * with `verify_jwt` (CLI default: true) and `entrypoint` from config.toml.
 */
import { join, resolve } from "node:path";
import { isFile } from "../common/mod.ts";
import type { ProjectConfig } from "../project/mod.ts";

/**
 * One function the local stack serves: where its module is and whether the
 * gateway checks a JWT. (Not _shared's `FunctionSpec`, which is what a
 * function's own code declares: actions, routes, auth.)
 */
export interface ServedFunction {
  name: string;
  /** Absolute path of the module to load. */
  entrypoint: string;
  verifyJwt: boolean;
}

/** Lists the functions under `<workdir>/supabase/functions`, sorted by name. */
export async function discoverFunctions(
  workdir: string,
  config: ProjectConfig,
): Promise<ServedFunction[]> {
  const supabaseDir = join(workdir, "supabase");
  const root = join(supabaseDir, "functions");
  const names = new Set<string>();
  try {
    for await (const entry of Deno.readDir(root)) {
      if (entry.isDirectory && !/^[_.]/.test(entry.name)) names.add(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  // A config.toml entry with an entrypoint is a function even without its own folder.
  for (const [name, c] of Object.entries(config.functions)) if (c.entrypoint) names.add(name);
  const specs: ServedFunction[] = [];
  for (const name of names) {
    const c = config.functions[name] ?? {};
    if (c.enabled === false) continue;
    const entrypoint = c.entrypoint
      ? resolve(supabaseDir, c.entrypoint)
      : join(root, name, "index.ts");
    if (!(await isFile(entrypoint))) continue;
    specs.push({ name, entrypoint, verifyJwt: c.verifyJwt ?? true });
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}
