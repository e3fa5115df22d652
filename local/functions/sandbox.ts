/**
 * The permissions a function process gets: what the hosted Edge Runtime grants
 * a function, no more. Network and environment; read of the function's own
 * folder, its entrypoint's folder, the shared `_` folders of supabase/functions
 * and its scratch folder; write to the scratch folder only. No subprocesses, no
 * FFI, no `sys`. npm packages still load: Deno reads its own module cache
 * without a permission check.
 *
 * The scratch folder stands in for the platform's /tmp. It is a private folder
 * per process (TMPDIR points at it, so Deno.makeTempFile/Dir land there), not
 * this machine's /tmp: on the platform /tmp holds only the function's own
 * files, while here it holds everything else too, a checkout under /tmp included.
 */
import { dirname, join } from "node:path";

/** Inputs of {@link permissionFlags}. */
export interface SandboxPaths {
  /** `supabase/functions/<name>`. */
  functionDir: string;
  /** Absolute path of the entrypoint. */
  entrypoint: string;
  /** `_`-prefixed folders of supabase/functions (shared code). */
  sharedDirs: string[];
  /** The process's private stand-in for /tmp: the one folder it may write to. */
  scratchDir: string;
}

/** The folders a function may read. */
export function readableDirs(paths: SandboxPaths): string[] {
  const dirs = [
    paths.functionDir,
    dirname(paths.entrypoint),
    ...paths.sharedDirs,
    paths.scratchDir,
  ];
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
    `--allow-write=${paths.scratchDir}`,
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
