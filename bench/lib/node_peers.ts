/**
 * The Node peers' dependencies (bench/node/package.json, pinned by its
 * package-lock.json) are installed by the bench itself, with npm, into
 * bench/node/node_modules (gitignored), so a clean clone needs nothing else.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const NODE_DIR = fileURLToPath(new URL("../node/", import.meta.url));

async function mtime(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

/** Runs `npm ci` in bench/node unless its node_modules is newer than the lock file. */
export async function ensureNodePeers(): Promise<void> {
  const lock = join(NODE_DIR, "package-lock.json");
  const installed = join(NODE_DIR, "node_modules", ".package-lock.json");
  if ((await mtime(installed)) >= (await mtime(lock)) && (await mtime(installed)) > 0) return;
  console.log("installing the Node peers (npm ci --prefix bench/node) ...");
  const out = await new Deno.Command("npm", {
    args: ["ci", "--prefix", NODE_DIR, "--no-audit", "--no-fund", "--loglevel=error"],
    stdout: "inherit",
    stderr: "inherit",
  }).output().catch((e) => {
    throw new Error(`npm is needed for the Node peers of the benches (bench/node): ${e}`);
  });
  if (!out.success) throw new Error("npm ci --prefix bench/node failed");
}

/** The `node` version, for the report (graphile-worker 0.18 and pg-boss 12 declare node >= 22). */
export async function nodeVersion(): Promise<string> {
  const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** Installed version of a Node peer package. */
export async function peerVersion(pkg: string): Promise<string> {
  const text = await Deno.readTextFile(join(NODE_DIR, "node_modules", pkg, "package.json"));
  return (JSON.parse(text) as { version: string }).version;
}
