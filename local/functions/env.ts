/**
 * The environment each function process gets, as `supabase functions serve`
 * builds it (see docs/local-stack.md, "Environment the functions see"): the
 * project's URL, database and keys, then config.toml's `[edge_runtime.secrets]`,
 * the user's `supabase/functions/.env` and `--env-file` files (later wins). Nothing else of the developer's shell leaks in, so a
 * function cannot come to depend on it.
 */
import { join } from "node:path";
import { type LocalKeys, publicJwks, readEnvFile } from "../project/mod.ts";

/**
 * Host variables a function process needs to run at all: its cache (so npm
 * packages are not fetched again), temp dir, and the machine's proxy and CA
 * settings. Without the last two, behind a TLS-intercepting proxy, a
 * function's first npm import hangs and then fails.
 */
export const PASSTHROUGH = [
  "PATH",
  "HOME",
  "TMPDIR",
  "TMP",
  "TEMP",
  "LANG",
  "TZ",
  // Deno's cache: DENO_DIR, else $XDG_CACHE_HOME/deno; the npm registry it resolves from.
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "NPM_CONFIG_REGISTRY",
  "npm_config_registry",
  // Proxies; tools disagree on the case, so both are passed.
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  // Certificate authorities.
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NODE_EXTRA_CA_CERTS",
];

/** Inputs of {@link functionEnv}. */
export interface FunctionEnvOptions {
  supabaseUrl: string;
  dbUrl: string;
  keys: LocalKeys;
  workdir: string;
  envFiles: string[];
  /** `[edge_runtime.secrets]` as written; `env(NAME)` is read from the host environment. */
  secrets?: Record<string, string>;
  hostEnv: (name: string) => string | undefined;
  log: (line: string) => void;
}

/** Builds the variables for every function process. */
export async function functionEnv(options: FunctionEnvOptions): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const name of PASSTHROUGH) {
    const value = options.hostEnv(name);
    if (value !== undefined) env[name] = value;
  }
  const user: Record<string, string> = {};
  for (const [name, raw] of Object.entries(options.secrets ?? {})) {
    const ref = /^env\((.+)\)$/.exec(raw.trim())?.[1];
    const value = ref === undefined ? raw : options.hostEnv(ref);
    if (value === undefined) {
      options.log(`env: [edge_runtime.secrets] ${name} = "${raw}": ${ref} is not set; skipped`);
      continue;
    }
    user[name] = value;
  }
  Object.assign(user, await readEnvFile(join(options.workdir, "supabase", "functions", ".env")));
  for (const file of options.envFiles) Object.assign(user, await readEnvFile(file, true));
  for (const [name, value] of Object.entries(user)) {
    // The platform reserves SUPABASE_*; the CLI skips such secrets too.
    if (name.startsWith("SUPABASE_")) {
      options.log(`env: skipping ${name} (names starting with SUPABASE_ are reserved)`);
      continue;
    }
    env[name] = value;
  }
  const { publishableKeys, secretKeys } = options.keys;
  return {
    ...env,
    SUPABASE_URL: options.supabaseUrl,
    SUPABASE_DB_URL: options.dbUrl,
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify(publishableKeys),
    SUPABASE_SECRET_KEYS: JSON.stringify(secretKeys),
    SUPABASE_PUBLISHABLE_KEY: publishableKeys.default!,
    SUPABASE_SECRET_KEY: secretKeys.default!,
    // Legacy names: supabase-js accepts the new keys wherever these are used.
    SUPABASE_ANON_KEY: publishableKeys.default!,
    SUPABASE_SERVICE_ROLE_KEY: secretKeys.default!,
    SUPABASE_JWKS: JSON.stringify(publicJwks(options.keys)),
    SUPABASE_JWKS_URL: `${options.supabaseUrl}/auth/v1/.well-known/jwks.json`,
  };
}
