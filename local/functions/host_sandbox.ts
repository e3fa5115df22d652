/**
 * Clear messages for the hosted runtime's limits inside a function process.
 * The permissions themselves are Deno's (sandbox.ts sets the flags); this only
 * makes their errors name the platform's rule instead of suggesting
 * `--allow-*` flags that do not exist when deployed, and explains an import
 * that could not be fetched (JSR and deno.land are not reachable everywhere).
 */
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The platform's file rule, in the words the errors use. */
export const FILE_RULE = "the hosted Edge Runtime lets a function read only its own files, " +
  "_shared and /tmp, and write only to /tmp";

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

const FS_FUNCTIONS = [
  "readFile",
  "readTextFile",
  "readDir",
  "writeFile",
  "writeTextFile",
  "open",
  "create",
  "mkdir",
  "remove",
  "rename",
  "copyFile",
  "stat",
  "lstat",
  "realPath",
  "readLink",
  "symlink",
  "link",
  "truncate",
  "chmod",
  "chown",
  "makeTempDir",
  "makeTempFile",
  "utime",
];

function explain(error: unknown): unknown {
  if (!(error instanceof Deno.errors.NotCapable)) return error;
  const base = error.message.replace(/, run again with the --allow-\w+ flag\.?$/, "");
  const better = new Deno.errors.NotCapable(`${base}: ${FILE_RULE}`);
  better.stack = better.stack?.replace(/^.*\n/, `NotCapable: ${base}: ${FILE_RULE}\n`);
  return better;
}

function wrap(target: Record<string, unknown>, key: string): void {
  const original = target[key];
  if (typeof original !== "function") return;
  target[key] = function (this: unknown, ...args: unknown[]) {
    try {
      const result = original.apply(this, args);
      if (result instanceof Promise) {
        return result.catch((e: unknown) => Promise.reject(explain(e)));
      }
      return result;
    } catch (error) {
      throw explain(error);
    }
  };
}

/** Replaces what the hosted runtime does not offer and rewords file permission errors. */
export function installSandboxMessages(): void {
  const deno = Deno as unknown as Record<string, unknown>;
  for (const name of FS_FUNCTIONS) {
    wrap(deno, name);
    wrap(deno, `${name}Sync`);
  }
  const refuse = (what: string) => {
    throw new Deno.errors.NotCapable(
      `${what}: the hosted Edge Runtime does not allow subprocesses (no Deno.Command)`,
    );
  };
  deno.Command = class {
    constructor(command: string | URL) {
      refuse(`Deno.Command("${command}")`);
    }
  };
  deno.dlopen = () => {
    throw new Deno.errors.NotCapable(
      "Deno.dlopen: the hosted Edge Runtime does not allow native libraries (no FFI)",
    );
  };
}

/**
 * One line for a module that failed to load because a remote import could not
 * be fetched (JSR, deno.land); null for any other failure.
 */
export function unreachableImportLine(
  name: string,
  error: unknown,
  functionsDir: string,
): string | null {
  // Deno colours the location in module-graph errors.
  const message = (error instanceof Error ? error.message : String(error)).replace(ANSI, "");
  const jsr = /JSR package manifest for '([^']+)' failed to load/.exec(message) ??
    /Import 'https:\/\/jsr\.io\/(@[^/]+\/[^/']+)/.exec(message);
  const remote = /Import '(https?:\/\/[^']+)' failed/.exec(message);
  if (!jsr && !remote) return null;
  const what = jsr ? `jsr:${jsr[1]}` : remote![1];
  const where = /at (file:\/\/\S+?):(\d+):(\d+)/.exec(message);
  const at = where
    ? ` (imported at ${relative(functionsDir, fileURLToPath(where[1]!))}:${where[2]}:${where[3]})`
    : "";
  const host = jsr ? "jsr.io" : new URL(remote![1]!).host;
  return `function "${name}" cannot load ${what}${at}: ${host} could not be reached from ` +
    `this machine; use an npm: specifier in the function's deno.json ` +
    `(deno task new <name> writes one)`;
}
