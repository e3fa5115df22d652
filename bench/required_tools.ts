/**
 * External programs the benches run (wrk, ...). Checked before a bench starts
 * anything, so a missing one is a one-line answer with the install command
 * instead of a stack trace from deep inside a run with servers already up.
 */
import { join } from "node:path";

/** Node.js and npm: bench:queue runs graphile-worker and pg-boss under Node, their own runtime. */
export const NODE: RequiredTool = {
  command: "node",
  install:
    "apt-get install nodejs npm (Debian/Ubuntu) or brew install node (macOS), Node 20 or later",
};
export const NPM: RequiredTool = { command: "npm", install: NODE.install };

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

/**
 * Exits 1 unless `node` is Node.js itself. Deno puts a `node` shim first on its
 * own PATH (node_compat_bin), so a peer "under Node" could silently run under
 * Deno: the comparison would then not be of each library in its own runtime.
 */
export async function requireRealNode(bench: string): Promise<void> {
  const probe = "process.versions.deno ? '' : process.version";
  const out = await new Deno.Command("node", {
    args: ["-p", probe],
    stdout: "piped",
    stderr: "null",
  })
    .output()
    .catch(() => null);
  const version = out?.success ? new TextDecoder().decode(out.stdout).trim() : "";
  if (version.startsWith("v")) return;
  console.error(
    `${bench}: \`node\` is not on PATH (only Deno's node shim, if anything). Install it: ${NODE.install}.`,
  );
  Deno.exit(1);
}
