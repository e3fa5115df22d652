/**
 * The permissions a function process gets: what the hosted Edge Runtime grants
 * a function, no more. Network and environment; read of the function's own
 * folder, its entrypoint's folder, the shared `_` folders of supabase/functions
 * and /tmp; write to /tmp only. No subprocesses, no FFI, no `sys`. npm packages
 * still load: Deno reads its own module cache without a permission check.
 */
import { dirname, join } from "node:path";

/** The one folder a function may write to (and the temp dir it sees). */
export const WRITABLE_DIR = "/tmp";

/** Inputs of {@link permissionFlags}. */
export interface SandboxPaths {
  /** `supabase/functions/<name>`. */
  functionDir: string;
  /** Absolute path of the entrypoint. */
  entrypoint: string;
  /** `_`-prefixed folders of supabase/functions (shared code). */
  sharedDirs: string[];
}

/** The folders a function may read. */
export function readableDirs(paths: SandboxPaths): string[] {
  const dirs = [paths.functionDir, dirname(paths.entrypoint), ...paths.sharedDirs, WRITABLE_DIR];
  return [...new Set(dirs)];
}

/** `deno run` permission flags for one function. */
export function permissionFlags(paths: SandboxPaths): string[] {
  const readable = readableDirs(paths);
  const bad = readable.find((dir) => dir.includes(","));
  if (bad) {
    throw new Error(`cannot grant read access to "${bad}": Deno's flags cannot hold a comma`);
  }
  return [
    "--allow-net",
    "--allow-env",
    `--allow-read=${readable.join(",")}`,
    `--allow-write=${WRITABLE_DIR}`,
  ];
}

/** The `_`-prefixed folders under `functionsDir` (shared code, never a function). */
export async function sharedDirs(functionsDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(functionsDir)) {
      if (entry.isDirectory && entry.name.startsWith("_")) out.push(join(functionsDir, entry.name));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}
