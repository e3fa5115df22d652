/**
 * The stack's database step: the embedded Postgres (data kept in
 * `<data dir>/postgres` between runs, restarted if it dies) or the database
 * given by SUPABASE_DB_URL; then the local bootstrap, pending migrations
 * (recorded like `supabase db push`) and, on a fresh database, the seed.
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { applyBootstrap, applyMigrations, applySeed, type Migration } from "./migrate.ts";
import { errorMessage, isDirectory, sleep } from "../common/mod.ts";
import { assertPortFree } from "../project/mod.ts";
import { initCluster, type PostgresServer, startPostgres } from "./postgres_server.ts";

/**
 * Options for {@link prepareDatabase}: which database and where its files go.
 * (Not _shared/db.ts's `DatabaseOptions`, a function's connection pool settings.)
 */
export interface PrepareDatabaseOptions {
  /** External database; null = embedded. */
  dbUrl: string | null;
  dataDir: string;
  port: number;
  workdir: string;
  restartDelayMs: number;
  log: (line: string) => void;
}

/** The prepared database. */
export interface DatabaseHandle {
  url: string;
  embedded: boolean;
  /** No migration was recorded before this start (the seed ran, if there is one). */
  fresh: boolean;
  applied: Migration[];
  seeded: boolean;
  /** Pid of the embedded Postgres currently running, if any. */
  pid(): number | null;
  /** Called with the new pid each time the embedded Postgres is (re)started. */
  onRestart: ((pid: number) => void) | null;
  stop(): Promise<void>;
}

/** Starts the embedded cluster and restarts it whenever it dies until `stop()`. */
async function superviseEmbedded(options: PrepareDatabaseOptions) {
  const dataDir = join(options.dataDir, "postgres");
  await Deno.mkdir(options.dataDir, { recursive: true, mode: 0o755 });
  await Deno.chmod(options.dataDir, 0o755); // Postgres may run as another OS user.
  const fresh = await initCluster(dataDir);
  const start = () =>
    startPostgres({
      dataDir,
      port: options.port,
      // Routine LOG lines and the start-up probe's "starting up" refusals are noise here.
      onLog: (line) => {
        if (!/\] (LOG|DETAIL|HINT):|starting up/.test(line)) options.log(`[postgres] ${line}`);
      },
    });
  let server: PostgresServer | null = await start();
  let stopping = false;
  const handle = {
    fresh,
    url: server.url,
    server: () => server,
    onRestart: null as ((pid: number) => void) | null,
    stop: async () => {
      stopping = true;
      await server?.stop();
    },
  };
  const watch = async (current: PostgresServer): Promise<void> => {
    const status = await current.exited;
    if (stopping) return;
    server = null;
    options.log(`[postgres] exited unexpectedly (code ${status.code}); restarting`);
    for (let attempt = 0; !stopping; attempt++) {
      await sleep(options.restartDelayMs + Math.min(attempt, 10) * 200);
      if (stopping) return;
      try {
        const next = await start();
        if (stopping) return void await next.stop();
        server = next;
        options.log(`[postgres] restarted (pid ${next.pid})`);
        handle.onRestart?.(next.pid);
        watch(next);
        return;
      } catch (error) {
        options.log(`[postgres] restart failed: ${errorMessage(error)}; retrying`);
      }
    }
  };
  watch(server);
  return handle;
}

/** True on a hosted Supabase database, whose own auth helpers must not be replaced. */
async function isHostedSupabase(sql: postgres.Sql): Promise<boolean> {
  const [row] =
    await sql`select exists (select 1 from pg_roles where rolname = 'supabase_admin') as hosted`;
  return Boolean(row?.hosted);
}

/** Runs the whole database step. Throws MigrationError naming the failing file. */
export async function prepareDatabase(options: PrepareDatabaseOptions): Promise<DatabaseHandle> {
  let embedded: Awaited<ReturnType<typeof superviseEmbedded>> | null = null;
  if (!options.dbUrl) {
    assertPortFree(options.port, "embedded Postgres", "--db-port");
    embedded = await superviseEmbedded(options);
  }
  const url = options.dbUrl ?? embedded!.url;
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    if (!(await isHostedSupabase(sql))) await applyBootstrap(sql);
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from supabase_migrations.schema_migrations`;
    // The CLI seeds a new database; "new" = nothing recorded yet, so a first run
    // that stopped at a broken migration still gets its seed once that is fixed.
    const fresh = n === 0;
    const dir = join(options.workdir, "supabase", "migrations");
    const hasMigrations = await isDirectory(dir);
    const { applied } = !hasMigrations ? { applied: [] } : await applyMigrations(sql, {
      dir,
      onApplied: (m, ms) =>
        options.log(`  applied ${m.version}_${m.name}.sql (${ms.toFixed(0)} ms)`),
    });
    const seeded = fresh && await applySeed(sql, join(options.workdir, "supabase", "seed.sql"));
    const handle: DatabaseHandle = {
      url,
      embedded: embedded !== null,
      fresh,
      applied,
      seeded,
      pid: () => embedded?.server()?.pid ?? null,
      onRestart: null,
      stop: async () => await embedded?.stop(),
    };
    if (embedded) embedded.onRestart = (pid) => handle.onRestart?.(pid);
    return handle;
  } catch (error) {
    await embedded?.stop();
    throw error;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
