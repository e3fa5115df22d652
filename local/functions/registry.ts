/**
 * Which functions the local gateway serves: every folder of
 * `supabase/functions` not starting with `_` or `.`, minus `enabled = false`,
 * with `verify_jwt` (CLI default: true) and `entrypoint` from config.toml.
 */
import { join, resolve } from "node:path";
import { isFile } from "../common/mod.ts";
import type { ProjectConfig } from "../project/mod.ts";

/** One servable function. */
export interface FunctionSpec {
  name: string;
  /** Absolute path of the module to load. */
  entrypoint: string;
  verifyJwt: boolean;
}

/** Lists the functions under `<workdir>/supabase/functions`, sorted by name. */
export async function discoverFunctions(
  workdir: string,
  config: ProjectConfig,
): Promise<FunctionSpec[]> {
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
  const specs: FunctionSpec[] = [];
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
