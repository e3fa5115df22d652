/**
 * Starts and stops one embedded Postgres cluster on 127.0.0.1.
 *
 * @example
 * const pg = await startPostgres({ dataDir: "/tmp/pg", port: 54322 });
 * console.log(pg.url); // postgresql://postgres:postgres@127.0.0.1:54322/postgres
 * await pg.stop();
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { lexists, sleep } from "../common/mod.ts";
import {
  guardChild,
  postgresBinaries,
  postgresCommand,
  traversableByOthers,
} from "./postgres_binaries.ts";

/** Options for {@link startPostgres}. */
export interface StartPostgresOptions {
  dataDir: string;
  port: number;
  /** Trade durability for speed (tests): fsync off, no full-page writes. */
  ephemeral?: boolean;
  /** Password of the `postgres` superuser (Supabase CLI default: postgres). */
  password?: string;
  /** Receives Postgres' own log lines. */
  onLog?: (line: string) => void;
  /**
   * Do not keep this process alive for the server's sake (the test harness's
   * private cluster, which is killed when the process exits).
   */
  background?: boolean;
}

/** A running cluster. */
export interface PostgresServer {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  /** Fast shutdown (SIGINT), then SIGKILL if it lingers. */
  stop(): Promise<void>;
  /** Resolves when the server process exits, for whatever reason. */
  exited: Promise<Deno.CommandStatus>;
}

async function runChecked(cmd: { cmd: string; args: string[] }): Promise<void> {
  const out = await new Deno.Command(cmd.cmd, { args: cmd.args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) || new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd.args.at(-1) ?? cmd.cmd}: ${text.trim()}`);
  }
}

/** Runs initdb when `dataDir` holds no cluster yet. Returns true if it created one. */
export async function initCluster(dataDir: string, password = "postgres"): Promise<boolean> {
  if (await lexists(join(dataDir, "PG_VERSION"))) return false;
  const bins = await postgresBinaries();
  if (bins.runAs && !(await traversableByOthers(join(dataDir, "..")))) {
    throw new Error(
      `${dataDir} is not reachable by the postgres OS user (a parent folder is private)`,
    );
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const pwfile = join(dataDir, "..", `.pwfile-${crypto.randomUUID()}`);
  await Deno.writeTextFile(pwfile, password + "\n");
  try {
    if (bins.runAs) {
      await Deno.chown(dataDir, bins.runAs.uid, bins.runAs.gid);
      await Deno.chown(pwfile, bins.runAs.uid, bins.runAs.gid);
    }
    await runChecked(postgresCommand(bins, "initdb", [
      "-D",
      dataDir,
      "-U",
      "postgres",
      `--pwfile=${pwfile}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]));
  } finally {
    await Deno.remove(pwfile).catch(() => {});
  }
  return true;
}

/** Polls until Postgres accepts a query or the process dies. */
async function waitReady(url: string, exited: Promise<unknown>, timeoutMs: number) {
  let dead = false;
  exited.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline && !dead) {
    const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch (error) {
      lastError = error;
      await sleep(50);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  throw new Error(
    dead
      ? "Postgres exited during start-up"
      : `Postgres did not become ready: ${String(lastError)}`,
  );
}

/** Initialises (if needed) and starts a cluster listening on 127.0.0.1 only. */
export async function startPostgres(options: StartPostgresOptions): Promise<PostgresServer> {
  const password = options.password ?? "postgres";
  await initCluster(options.dataDir, password);
  const bins = await postgresBinaries();
  const settings = [
    "listen_addresses=127.0.0.1",
    `port=${options.port}`,
    "unix_socket_directories=",
    "max_connections=200",
    "shared_buffers=128MB",
    "log_min_messages=warning",
    ...(options.ephemeral ? ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] : []),
  ];
  const cmd = postgresCommand(bins, "postgres", [
    "-D",
    options.dataDir,
    ...settings.flatMap((s) => ["-c", s]),
  ]);
  const onLog = options.onLog;
  const child = new Deno.Command(cmd.cmd, {
    args: cmd.args,
    stdin: "null",
    stdout: onLog ? "piped" : "null",
    stderr: onLog ? "piped" : "null",
  }).spawn();
  if (onLog) {
    for (const stream of [child.stdout, child.stderr]) {
      const pump = stream.pipeThrough(new TextDecoderStream());
      (async () => {
        for await (const chunk of pump) {
          for (const line of chunk.split("\n")) if (line.trim()) onLog(line);
        }
      })().catch(() => {});
    }
  }
  if (options.background) child.unref();
  const exited = child.status;
  const disarm = guardChild(child.pid);
  exited.finally(disarm);
  const url = `postgresql://postgres:${
    encodeURIComponent(password)
  }@127.0.0.1:${options.port}/postgres`;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      try {
        child.kill("SIGINT");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 10_000);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
  try {
    await waitReady(url, exited, 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port: options.port, pid: child.pid, dataDir: options.dataDir, stop, exited };
}
