/**
 * Hot reload trigger: watches `supabase/functions` (and config.toml) and
 * reports which functions a burst of changes touched. A change in `_shared`
 * (or any `_` folder), a `.env`, a deno.json or config.toml affects all.
 */
import { relative, sep } from "node:path";

/** What a batch of changes affects. */
export type Affected = Set<string> | "all";

/** Maps changed paths under `functionsDir` to function names. */
export function affectedFunctions(functionsDir: string, paths: string[]): Affected {
  const names = new Set<string>();
  for (const path of paths) {
    const rel = relative(functionsDir, path);
    if (rel.startsWith("..")) return "all"; // config.toml or another watched file
    const [first, ...rest] = rel.split(sep);
    if (!first) continue;
    if (rest.length === 0) {
      // A file directly in functions/: .env and config files matter, others do not.
      if (first.startsWith(".env") || first.startsWith("deno.json") || first.endsWith(".json")) {
        return "all";
      }
      // A new or removed function folder shows up as a top-level entry too.
      if (!first.includes(".")) names.add(first);
      continue;
    }
    if (first.startsWith("_")) return "all";
    if (!first.startsWith(".")) names.add(first);
  }
  return names;
}

/** Watches `paths`, calling `onChange` once per burst (debounced). */
export function watchForChanges(
  functionsDir: string,
  paths: string[],
  onChange: (affected: Affected) => void,
  debounceMs = 60,
): { close(): Promise<void> } {
  const watcher = Deno.watchFs(paths, { recursive: true });
  let pending: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    const affected = affectedFunctions(functionsDir, pending);
    pending = [];
    if (affected === "all" || affected.size > 0) onChange(affected);
  };
  const loop = (async () => {
    for await (const event of watcher) {
      if (event.kind === "access" || event.kind === "other") continue;
      pending.push(...event.paths);
      clearTimeout(timer);
      timer = setTimeout(flush, debounceMs);
    }
  })().catch(() => {});
  return {
    close: async () => {
      watcher.close();
      clearTimeout(timer);
      await loop;
    },
  };
}
