/**
 * Reads `supabase/config.toml` the way the local stack needs it: the API and
 * database ports, the `[functions.<name>]` tables (`enabled`, `verify_jwt`,
 * `entrypoint`, `import_map`), `[edge_runtime]` (`policy`, `secrets`) and the
 * local stack's own `[local.limits]` (limits.ts). A malformed file stops
 * start-up with its path, line and column.
 */
import { join } from "node:path";
import { parse, TomlError } from "npm:smol-toml@1";
import { errorMessage } from "../common/mod.ts";
import { bool, ConfigError, str, table } from "./config_values.ts";
import { type FunctionLimits, parseLimits, PLATFORM_LIMITS } from "./limits.ts";

export { ConfigError } from "./config_values.ts";

/** The `[functions.<name>]` settings the local gateway honours. */
export interface FunctionConfig {
  enabled?: boolean;
  verifyJwt?: boolean;
  /** As written in config.toml: relative to the `supabase` folder. */
  entrypoint?: string;
  /** As written in config.toml: relative to the `supabase` folder (a deno.json or an import map). */
  importMap?: string;
}

/**
 * `[edge_runtime] policy`, as the edge runtime applies it: `per_worker` keeps
 * a worker for many requests (until a limit or a reload retires it); `oneshot`
 * starts a fresh worker for each request and retires it after the response.
 */
export type EdgeRuntimePolicy = "per_worker" | "oneshot";

/** `[edge_runtime]`: how the CLI's runtime serves functions. */
export interface EdgeRuntimeConfig {
  policy: EdgeRuntimePolicy;
  /** `[edge_runtime.secrets]`, `env(NAME)` references kept as written (resolved by the functions' env). */
  secrets: Record<string, string>;
}

/** The parts of config.toml the local stack uses. */
export interface ProjectConfig {
  file: string;
  apiPort: number | null;
  dbPort: number | null;
  functions: Record<string, FunctionConfig>;
  edgeRuntime: EdgeRuntimeConfig;
  /** The hosted runtime's limits, as the local stack applies them. */
  limits: FunctionLimits;
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
      importMap: str(file, `${where} import_map`, t.import_map),
    };
  }
  return {
    file,
    apiPort: port(file, "[api] port", table(doc.api).port),
    dbPort: port(file, "[db] port", table(doc.db).port),
    functions,
    edgeRuntime: parseEdgeRuntime(file, table(doc.edge_runtime)),
    limits: parseLimits(file, table(table(doc.local).limits)),
  };
}

function parseEdgeRuntime(file: string, t: Record<string, unknown>): EdgeRuntimeConfig {
  const policy = str(file, "[edge_runtime] policy", t.policy) ?? "per_worker";
  if (policy !== "per_worker" && policy !== "oneshot") {
    throw new ConfigError(file, `[edge_runtime] policy must be "per_worker" or "oneshot"`);
  }
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(table(t.secrets))) {
    secrets[name] = str(file, `[edge_runtime.secrets] ${name}`, value)!;
  }
  return { policy, secrets };
}

/** What a project without config.toml gets. */
export function defaultProjectConfig(file: string): ProjectConfig {
  return {
    file,
    apiPort: null,
    dbPort: null,
    functions: {},
    edgeRuntime: { policy: "per_worker", secrets: {} },
    limits: { ...PLATFORM_LIMITS },
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
      return defaultProjectConfig(file);
    }
    throw new ConfigError(file, `cannot read: ${errorMessage(error)}`);
  }
  return parseProjectConfig(text, file);
}
