/**
 * Reads `supabase/config.toml` the way the local stack needs it: the API and
 * database ports and the `[functions.<name>]` tables (`enabled`, `verify_jwt`,
 * `entrypoint`). A malformed file stops start-up with its path, line and column.
 */
import { join } from "node:path";
import { parse, TomlError } from "npm:smol-toml@1";
import { errorMessage } from "../common/mod.ts";

/** The `[functions.<name>]` settings the local gateway honours. */
export interface FunctionConfig {
  enabled?: boolean;
  verifyJwt?: boolean;
  /** As written in config.toml: relative to the `supabase` folder. */
  entrypoint?: string;
}

/** The parts of config.toml the local stack uses. */
export interface ProjectConfig {
  file: string;
  apiPort: number | null;
  dbPort: number | null;
  functions: Record<string, FunctionConfig>;
}

/** config.toml could not be read or has a wrong value; names the file and, when known, line. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(`${file}${line ? `:${line}:${column ?? 1}` : ""}: ${detail}`);
    this.name = "ConfigError";
  }
}

function table(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

function bool(file: string, where: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new ConfigError(file, `${where} must be true or false`);
}

function str(file: string, where: string, value: unknown): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  throw new ConfigError(file, `${where} must be a string`);
}

function port(file: string, where: string, value: unknown): number | null {
  if (value === undefined) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ConfigError(file, `${where} must be a port number`);
  }
  return value;
}

/** Parses config.toml text; `file` is only used in error messages. */
export function parseProjectConfig(text: string, file: string): ProjectConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const first = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw new ConfigError(file, `invalid TOML: ${first}`, error.line, error.column);
    }
    throw error;
  }
  const functions: Record<string, FunctionConfig> = {};
  for (const [name, raw] of Object.entries(table(doc.functions))) {
    const t = table(raw);
    const where = `[functions.${name}]`;
    functions[name] = {
      enabled: bool(file, `${where} enabled`, t.enabled),
      verifyJwt: bool(file, `${where} verify_jwt`, t.verify_jwt),
      entrypoint: str(file, `${where} entrypoint`, t.entrypoint),
    };
  }
  return {
    file,
    apiPort: port(file, "[api] port", table(doc.api).port),
    dbPort: port(file, "[db] port", table(doc.db).port),
    functions,
  };
}

/** Loads `<workdir>/supabase/config.toml`; a missing file means defaults. */
export async function loadProjectConfig(workdir: string): Promise<ProjectConfig> {
  const file = join(workdir, "supabase", "config.toml");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { file, apiPort: null, dbPort: null, functions: {} };
    }
    throw new ConfigError(file, `cannot read: ${errorMessage(error)}`);
  }
  return parseProjectConfig(text, file);
}
