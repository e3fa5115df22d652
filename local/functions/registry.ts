/**
 * Which functions the local gateway serves: every folder of
 * `supabase/functions` not starting with `_` or `.`, minus `enabled = false`,
 * with `verify_jwt` (CLI default: true), `entrypoint` and `import_map` from
 * config.toml (import_map.ts has the import map precedence).
 */
import { join, resolve } from "node:path";
import { isFile } from "../common/mod.ts";
import type { ProjectConfig } from "../project/mod.ts";
import { type ResolvedImportMap, resolveImportMap } from "./import_map.ts";
import { sharedDirs } from "./sandbox.ts";

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
  /** `supabase/functions/<name>` (its deno.json, its readable files). */
  dir: string;
  /** The import map it runs with; null: none (only `npm:` and relative imports resolve). */
  importMap: ResolvedImportMap | null;
  /** The shared `_` folders it may read. */
  sharedDirs: string[];
}

/** Options of {@link discoverFunctions}. */
export interface DiscoverOptions {
  /** `deno task dev --import-map <file>` (absolute): overrides every other import map. */
  importMapFlag?: string | null;
}

/** True when two specs would run the same process (same module, config and gate). */
export function sameSpec(a: ServedFunction, b: ServedFunction): boolean {
  return a.entrypoint === b.entrypoint && a.verifyJwt === b.verifyJwt &&
    a.importMap?.file === b.importMap?.file && a.sharedDirs.join() === b.sharedDirs.join();
}

/** Lists the functions under `<workdir>/supabase/functions`, sorted by name. */
export async function discoverFunctions(
  workdir: string,
  config: ProjectConfig,
  options: DiscoverOptions = {},
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
  const shared = await sharedDirs(root);
  const specs: ServedFunction[] = [];
  for (const name of names) {
    const c = config.functions[name] ?? {};
    if (c.enabled === false) continue;
    const entrypoint = c.entrypoint
      ? resolve(supabaseDir, c.entrypoint)
      : join(root, name, "index.ts");
    if (!(await isFile(entrypoint))) continue;
    const dir = join(root, name);
    const importMap = await resolveImportMap({
      supabaseDir,
      functionDir: dir,
      flag: options.importMapFlag,
      configured: c.importMap,
      name,
    });
    specs.push({
      name,
      entrypoint,
      verifyJwt: c.verifyJwt ?? true,
      dir,
      importMap,
      sharedDirs: shared,
    });
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}
