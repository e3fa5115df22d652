/**
 * Which import map a function runs with, in the order `supabase functions
 * serve` and `deploy` use:
 *
 * 1. `deno task dev --import-map <file>` (every function);
 * 2. `import_map` in the function's `[functions.<name>]` table of config.toml;
 * 3. the function's own `deno.json`, 4. `deno.jsonc`, 5. `import_map.json`;
 * 6. the global `supabase/functions/import_map.json`.
 *
 * Nothing found: the function runs with no configuration at all, as deployed,
 * so only full `npm:` specifiers and relative paths resolve. The project's root
 * deno.json never applies to a function: it is not deployed with it.
 */
import { basename, join, resolve } from "node:path";
import { isFile } from "../common/mod.ts";

/** Where an import map came from (for the log and the tests). */
export type ImportMapSource =
  | "--import-map"
  | "config.toml import_map"
  | "deno.json"
  | "deno.jsonc"
  | "import_map.json"
  | "functions/import_map.json";

/** The import map a function runs with. */
export interface ResolvedImportMap {
  /** Absolute path. */
  file: string;
  source: ImportMapSource;
}

/** A configured import map (flag or config.toml) that is not there. */
export class ImportMapError extends Error {
  override name = "ImportMapError";
}

/** Inputs of {@link resolveImportMap}. */
export interface ImportMapQuery {
  /** `<workdir>/supabase`. */
  supabaseDir: string;
  /** The function's folder, `supabase/functions/<name>`. */
  functionDir: string;
  /** Absolute path from `--import-map`, if given. */
  flag?: string | null;
  /** config.toml's `import_map`, as written (relative to `supabase`). */
  configured?: string;
  /** For error messages. */
  name: string;
}

/** Picks the import map by the CLI's precedence; null when there is none. */
export async function resolveImportMap(q: ImportMapQuery): Promise<ResolvedImportMap | null> {
  if (q.flag) {
    if (!(await isFile(q.flag))) throw new ImportMapError(`--import-map ${q.flag}: no such file`);
    return { file: q.flag, source: "--import-map" };
  }
  if (q.configured) {
    const file = resolve(q.supabaseDir, q.configured);
    if (!(await isFile(file))) {
      throw new ImportMapError(
        `[functions.${q.name}] import_map = "${q.configured}": no such file (${file})`,
      );
    }
    return { file, source: "config.toml import_map" };
  }
  for (const source of ["deno.json", "deno.jsonc", "import_map.json"] as const) {
    const file = join(q.functionDir, source);
    if (await isFile(file)) return { file, source };
  }
  const global = join(q.supabaseDir, "functions", "import_map.json");
  if (await isFile(global)) return { file: global, source: "functions/import_map.json" };
  return null;
}

/**
 * The `deno run` flags for an import map: a deno.json(c) is a whole config
 * (imports, scopes, compilerOptions), anything else a plain import map. Never
 * the project's config, and never a lockfile written into the function's folder.
 */
export function importMapFlags(map: ResolvedImportMap | null): string[] {
  if (!map) return ["--no-config", "--no-lock"];
  if (/^deno\.jsonc?$/.test(basename(map.file))) return ["--config", map.file, "--no-lock"];
  return ["--no-config", "--no-lock", "--import-map", map.file];
}
