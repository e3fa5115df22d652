/**
 * The whole local stack in one call: config, keys, gateway, database and
 * functions (started side by side), scheduler and hot reload. `local/dev.ts`
 * is the command-line face of this; tests may start it in-process.
 */
import { join } from "node:path";
import { errorMessage, exists, waitAtMost } from "./common/mod.ts";
import { startCron } from "./cron.ts";
import { type DatabaseHandle, prepareDatabase } from "./database/mod.ts";
import { type DevOptions, LogHold } from "./cli/mod.ts";
import {
  discoverFunctions,
  functionEnv,
  type FunctionEnvOptions,
  FunctionPool,
  watchForChanges,
} from "./functions/mod.ts";
import { createGateway, type Front, serveWithFront } from "./gateway/mod.ts";
import {
  loadOrCreateLocalKeys,
  loadProjectConfig,
  type LocalKeys,
  PortInUseError,
  type ProjectConfig,
  publicJwks,
} from "./project/mod.ts";

/** A running stack. */
export interface Stack {
  url: string;
  port: number;
  dbUrl: string;
  keys: LocalKeys;
  database: DatabaseHandle;
  pool: FunctionPool;
  /** Milliseconds from start to ready. */
  readyMs: number;
  stop(): Promise<void>;
}

/** Injected host access (tests pass their own). */
export interface StackDeps {
  log: (line: string) => void;
  /** Lines only worth seeing when looking closely (idle cron runs); dropped by default. */
  debug?: (line: string) => void;
  hostEnv: (name: string) => string | undefined;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function listen(
  port: number,
  headTimeoutMs: number,
  handler: (req: Request) => Promise<Response>,
): Front {
  try {
    return serveWithFront({ hostname: "127.0.0.1", port, headTimeoutMs, handler });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw new PortInUseError(port, "gateway", "--port");
    throw error;
  }
}

/** Starts everything; rejects (with everything it started stopped) on any start-up failure. */
export async function startStack(options: DevOptions, deps: StackDeps): Promise<Stack> {
  const t0 = performance.now();
  const { log } = deps;
  // Lines of requests the stack makes itself (cron) wait here until their outcome is known.
  const hold = new LogHold({ info: log, debug: deps.debug ?? (() => {}) });
  const config = await loadProjectConfig(options.workdir);
  const { port, dbPort, url, dbUrl } = addresses(options, config);
  const keys = await loadOrCreateLocalKeys(options.dataDir);
  const envOptions: FunctionEnvOptions = {
    supabaseUrl: url,
    dbUrl,
    secrets: config.edgeRuntime.secrets,
    keys,
    workdir: options.workdir,
    envFiles: options.envFiles,
    hostEnv: deps.hostEnv,
    log,
  };
  const pool = new FunctionPool({
    env: await functionEnv(envOptions),
    cwd: options.workdir,
    limits: config.limits,
    policy: config.edgeRuntime.policy,
    log: (line) => hold.log(line),
  });
  let ready = false;
  const server = listen(
    port,
    options.headTimeoutMs,
    createGateway({
      pool,
      jwks: publicJwks(keys),
      functionTimeoutMs: options.functionTimeoutMs ?? config.limits.requestIdleTimeoutMs,
      log,
      requestLog: (line, requestId) => hold.log(line, requestId),
      isReady: () => ready,
    }),
  );
  // Run in reverse order by stopAll: the database (unshifted) goes last.
  const cleanups: Cleanup[] = [() => pool.close(), () => waitAtMost(server.shutdown(), 1000)];
  const stopAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  };
  try {
    // Functions and database start side by side.
    const functionsTask = startFunctions(options, config, pool, log);
    const database = await startDatabase(options, dbPort, log);
    cleanups.unshift(() => database.stop());
    await functionsTask;
    cleanups.push(await writeStateFile(options.dataDir, { url, dbUrl, database }));
    if (options.watch) {
      cleanups.push(
        await startWatcher(
          options,
          pool,
          log,
          (c) => functionEnv({ ...envOptions, secrets: c.edgeRuntime.secrets }),
        ),
      );
    }
    if (options.cron) cleanups.push(startScheduler(url, keys, pool, options, deps, hold));
    ready = true;
    const readyMs = performance.now() - t0;
    log(`ready in ${seconds(readyMs)}`);
    return { url, port, dbUrl, keys, database, pool, readyMs, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Something started that must be stopped with the stack. */
type Cleanup = () => Promise<void>;

/** The gateway's and the database's ports and URLs: flags, then config.toml, then the CLI's defaults. */
function addresses(options: DevOptions, config: ProjectConfig) {
  const port = options.port ?? config.apiPort ?? 54321;
  const dbPort = options.dbPort ?? config.dbPort ?? 54322;
  const url = `http://127.0.0.1:${port}`;
  const dbUrl = options.dbUrl ?? `postgresql://postgres:postgres@127.0.0.1:${dbPort}/postgres`;
  return { port, dbPort, url, dbUrl };
}

/** Starts every function; the returned task logs which ones started (and which failed). */
function startFunctions(
  options: DevOptions,
  config: ProjectConfig,
  pool: FunctionPool,
  log: (line: string) => void,
): Promise<void> {
  const task = (async () => {
    const started = performance.now();
    const specs = await discoverFunctions(options.workdir, config, {
      importMapFlag: options.importMap,
    });
    await pool.sync(specs);
    const failed = specs.filter((s) => pool.current(s.name)?.state === "failed");
    const names = specs.map((s) => s.name).join(", ") || "none";
    log(
      `functions: ${names} started (${seconds(performance.now() - started)})` +
        (failed.length ? `; FAILED: ${failed.map((s) => s.name).join(", ")}` : "") +
        (config.edgeRuntime.policy === "oneshot"
          ? `; [edge_runtime] policy = "oneshot": a new worker per request`
          : ""),
    );
  })();
  // Awaited later; a database failure first must not leave it unhandled.
  task.catch(() => {});
  return task;
}

/** The database step, with its start and migration lines. */
async function startDatabase(
  options: DevOptions,
  dbPort: number,
  log: (line: string) => void,
): Promise<DatabaseHandle> {
  const dbStarted = performance.now();
  log(
    options.dbUrl
      ? "database: using SUPABASE_DB_URL"
      : `database: embedded Postgres on 127.0.0.1:${dbPort}`,
  );
  const database = await prepareDatabase({
    dbUrl: options.dbUrl,
    dataDir: options.dataDir,
    port: dbPort,
    workdir: options.workdir,
    restartDelayMs: options.dbRestartDelayMs,
    log,
  });
  log(
    `migrations: ${database.applied.length} applied` +
      (database.seeded ? ", seed.sql loaded" : "") +
      ` (database ready in ${seconds(performance.now() - dbStarted)})`,
  );
  return database;
}

/**
 * Writes `<data dir>/dev.json` (pid, URLs, the Postgres pid; `deno task token`
 * and the tests read it), again whenever Postgres restarts. The cleanup removes it.
 */
async function writeStateFile(
  dataDir: string,
  stack: { url: string; dbUrl: string; database: DatabaseHandle },
): Promise<Cleanup> {
  const stateFile = join(dataDir, "dev.json");
  const { url, dbUrl, database } = stack;
  const writeState = () =>
    Deno.writeTextFile(
      stateFile,
      JSON.stringify({
        pid: Deno.pid,
        url,
        dbUrl,
        postgresPid: database.pid(),
      }),
    );
  await writeState();
  database.onRestart = () => void writeState().catch(() => {});
  return () => Deno.remove(stateFile).catch(() => {});
}

/** The local cron: calls queue-worker on its schedule while it is served. */
function startScheduler(
  url: string,
  keys: LocalKeys,
  pool: FunctionPool,
  options: DevOptions,
  deps: StackDeps,
  hold: LogHold,
): Cleanup {
  const cron = startCron({
    url: `${url}/functions/v1/queue-worker`,
    apiKey: keys.secretKeys.cron!,
    intervalMs: options.cronIntervalSeconds * 1000,
    enabled: () => pool.spec("queue-worker") !== undefined,
    log: deps.log,
    debug: deps.debug,
    hold: (requestId) => hold.hold(requestId),
  });
  return () => cron.stop();
}

async function startWatcher(
  options: DevOptions,
  pool: FunctionPool,
  log: (line: string) => void,
  readEnv: (config: ProjectConfig) => Promise<Record<string, string>>,
): Promise<Cleanup> {
  const functionsDir = join(options.workdir, "supabase", "functions");
  const configFile = join(options.workdir, "supabase", "config.toml");
  let chain = Promise.resolve();
  let watcher: { close(): Promise<void> };
  const paths: string[] = [];
  for (const path of [functionsDir, configFile]) if (await exists(path)) paths.push(path);
  try {
    if (paths.length === 0) throw new Error("no supabase/functions folder");
    watcher = watchForChanges(functionsDir, paths, (affected) => {
      // One reload at a time, in order.
      chain = chain.then(async () => {
        const started = performance.now();
        try {
          const config = await loadProjectConfig(options.workdir);
          const specs = await discoverFunctions(options.workdir, config, {
            importMapFlag: options.importMap,
          });
          // Read before anything restarts: a malformed .env leaves the running set alone.
          const env = await readEnv(config);
          const envChanged = pool.setEnv(env);
          const limitsChanged = pool.setLimits(config.limits);
          const policyChanged = pool.setPolicy(config.edgeRuntime.policy);
          const reload = envChanged || limitsChanged || policyChanged ? "all" : affected;
          await pool.sync(specs, reload);
          const what = reload === "all" ? "all functions" : [...reload].join(", ");
          log(`reloaded ${what} (${seconds(performance.now() - started)})`);
        } catch (error) {
          log(`reload failed: ${errorMessage(error)}`);
        }
      });
    });
  } catch (error) {
    log(`hot reload off: ${errorMessage(error)}`);
    return async () => {};
  }
  return async () => {
    await watcher.close();
    await chain;
  };
}
