/**
 * External programs the benches run (wrk, ...). Checked before a bench starts
 * anything, so a missing one is a one-line answer with the install command
 * instead of a stack trace from deep inside a run with servers already up.
 */
import { join } from "node:path";

/** A program a bench needs and how to install it. */
export interface RequiredTool {
  command: string;
  install: string;
}

/** `wrk`, the HTTP load generator of bench:http. */
export const WRK: RequiredTool = {
  command: "wrk",
  install: "apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)",
};

async function onPath(command: string, path: string): Promise<boolean> {
  const names = Deno.build.os === "windows" ? [`${command}.exe`, command] : [command];
  for (const dir of path.split(Deno.build.os === "windows" ? ";" : ":")) {
    if (!dir) continue;
    for (const name of names) {
      const stat = await Deno.stat(join(dir, name)).catch(() => null);
      // mode is null on Windows, where any file found counts as runnable.
      if (stat?.isFile && (stat.mode === null || (stat.mode & 0o111) !== 0)) return true;
    }
  }
  return false;
}

/** The tools not found on `path` (default: this process's PATH). */
export async function missingTools(
  tools: RequiredTool[],
  path: string = Deno.env.get("PATH") ?? "",
): Promise<RequiredTool[]> {
  const missing: RequiredTool[] = [];
  for (const tool of tools) if (!await onPath(tool.command, path)) missing.push(tool);
  return missing;
}

/** Exits 1 with what is missing and how to install it, before the bench starts anything. */
export async function requireTools(bench: string, tools: RequiredTool[]): Promise<void> {
  const missing = await missingTools(tools);
  if (missing.length === 0) return;
  for (const tool of missing) {
    console.error(`${bench}: \`${tool.command}\` is not on PATH. Install it: ${tool.install}.`);
  }
  Deno.exit(1);
}
