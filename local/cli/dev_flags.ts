/**
 * Command-line flags of `deno task dev`. Ports fall back to supabase/config.toml
 * and then to the Supabase CLI's defaults, so both tools agree on URLs.
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "../common/mod.ts";
import { PROJECT_ROOT } from "../project/mod.ts";

/** How often the local scheduler calls queue-worker, in seconds (the pg_cron schedule's interval). */
export const QUEUE_WORKER_INTERVAL_SECONDS = 5;

/** Default limit for a request head, in seconds: long enough for any real client, short enough that slow clients cannot pile up. */
const HEAD_TIMEOUT_SECONDS = 15;

/** Parsed `deno task dev` options. */
export interface DevOptions {
  /** Gateway port; null = config.toml [api] port, else 54321. */
  port: number | null;
  /** Embedded Postgres port; null = config.toml [db] port, else 54322. */
  dbPort: number | null;
  /** Use this database instead of the embedded one (SUPABASE_DB_URL / DATABASE_URL). */
  dbUrl: string | null;
  cron: boolean;
  cronIntervalSeconds: number;
  envFiles: string[];
  /** 504 after this long without a response; null = config.toml [local.limits], else 150 s. */
  functionTimeoutMs: number | null;
  /** `--import-map <file>` (absolute): the import map of every function, over all others. */
  importMap: string | null;
  /** A connection with no request in progress must send a complete request head within this. */
  headTimeoutMs: number;
  /** Project root (holds supabase/). */
  workdir: string;
  /** Postgres data, keys and the running stack's state file. */
  dataDir: string;
  /** Wait before restarting an embedded Postgres that died. */
  dbRestartDelayMs: number;
  watch: boolean;
  /** Also print debug lines (idle scheduler runs and the lines they cause). */
  verbose: boolean;
  help: boolean;
}

/** A flag with a bad value. */
export class FlagError extends Error {
  override name = "FlagError";
}

function int(name: string, raw: string | undefined, min: number, max: number): number | null {
  if (raw === undefined) return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new FlagError(`--${name} must be a number between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

const seconds = (s: number | null) => s === null ? null : s * 1000;

/** Usage text printed by `--help`. */
export const DEV_USAGE = `deno task dev [flags]
  --port <n>               gateway port (default: config.toml [api] port, else 54321)
  --db-port <n>            embedded Postgres port (default: config.toml [db] port, else 54322)
  --no-cron                do not call queue-worker on a schedule
  --cron-interval <s>      scheduler interval in seconds (default ${QUEUE_WORKER_INTERVAL_SECONDS})
  --env-file <path>        extra dotenv file for the functions (repeatable)
  --function-timeout <s>   answer 504 when a function sends no response in time
                           (default: config.toml [local.limits] request_idle_timeout_s, else 150)
  --import-map <path>      import map (or deno.json) for every function, over config.toml's
  --head-timeout <s>       close a connection that sends no complete request head in time
                           (slow or idle clients; default ${HEAD_TIMEOUT_SECONDS})
  --no-watch               no hot reload
  --verbose                also print debug lines (e.g. idle queue-worker runs)
  --workdir <path>         project root holding supabase/ (default: this checkout)
  --data-dir <path>        local state: Postgres data, keys (default: <workdir>/.local)
Environment: SUPABASE_DB_URL or DATABASE_URL uses that database instead of the embedded one.`;

/** Parses argv; `getEnv` supplies SUPABASE_DB_URL / DATABASE_URL. */
export function parseDevFlags(
  args: string[],
  getEnv: (name: string) => string | undefined = () => undefined,
): DevOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        port: { type: "string" },
        "db-port": { type: "string" },
        "no-cron": { type: "boolean" },
        "cron-interval": { type: "string" },
        "env-file": { type: "string", multiple: true },
        "function-timeout": { type: "string" },
        "import-map": { type: "string" },
        "head-timeout": { type: "string" },
        "no-watch": { type: "boolean" },
        verbose: { type: "boolean" },
        workdir: { type: "string" },
        "data-dir": { type: "string" },
        "db-restart-delay-ms": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new FlagError(errorMessage(error));
  }
  const workdir = resolve(values.workdir ?? PROJECT_ROOT);
  return {
    port: int("port", values.port, 1, 65535),
    dbPort: int("db-port", values["db-port"], 1, 65535),
    dbUrl: getEnv("SUPABASE_DB_URL")?.trim() || getEnv("DATABASE_URL")?.trim() || null,
    cron: !values["no-cron"],
    cronIntervalSeconds: int("cron-interval", values["cron-interval"], 0.1, 86400) ??
      QUEUE_WORKER_INTERVAL_SECONDS,
    envFiles: (values["env-file"] ?? []).map((f) => resolve(f)),
    functionTimeoutMs: seconds(int("function-timeout", values["function-timeout"], 0.05, 3600)),
    importMap: values["import-map"] ? resolve(values["import-map"]) : null,
    headTimeoutMs: (int("head-timeout", values["head-timeout"], 0.05, 3600) ??
      HEAD_TIMEOUT_SECONDS) * 1000,
    workdir,
    dataDir: resolve(values["data-dir"] ?? join(workdir, ".local")),
    dbRestartDelayMs: int("db-restart-delay-ms", values["db-restart-delay-ms"], 0, 600_000) ?? 500,
    watch: !values["no-watch"],
    verbose: values.verbose ?? false,
    help: values.help ?? false,
  };
}
