/**
 * The benches' Postgres: one embedded cluster in a temporary folder (fsync off
 * unless durable), an admin connection, and databases cloned from templates so
 * every measurement starts from the same state. Stopped and removed by `close()`,
 * or by Ctrl-C (onInterrupt).
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { startPostgres } from "../../local/database/mod.ts";
import { freePort, withDatabase } from "../../tests/_harness/database.ts";
import { onInterrupt } from "./proc.ts";

export class BenchCluster {
  #seq = 0;
  private constructor(
    readonly url: string,
    readonly admin: postgres.Sql,
    private readonly prefix: string,
    private readonly release: () => Promise<void>,
  ) {}

  /** Starts a cluster whose temporary folder and databases are named after `prefix`. */
  static async start(prefix: string, durable: boolean): Promise<BenchCluster> {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: `bench-${prefix}-pg-` });
    await Deno.chmod(dir, 0o755);
    const pg = await startPostgres({
      dataDir: join(dir, "data"),
      port: freePort(),
      ephemeral: !durable,
    });
    const cleanUp = async () => {
      await pg.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    };
    const disarm = onInterrupt(cleanUp);
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    return new BenchCluster(pg.url, admin, prefix, async () => {
      disarm();
      await admin.end({ timeout: 1 });
      await cleanUp();
    });
  }

  /** The server's version, for the bench's header line. */
  async version(): Promise<string> {
    const [row] = await this.admin`select current_setting('server_version') as v`;
    return row!.v as string;
  }

  /** A new database cloned from `template`. */
  async createFrom(template: string, name = `bench_${this.prefix}${++this.#seq}`) {
    await this.admin.unsafe(`create database ${name} template ${template}`);
    return { name, url: withDatabase(this.url, name) };
  }

  async drop(name: string): Promise<void> {
    await this.admin.unsafe(`drop database if exists ${name} with (force)`);
  }

  /** Runs `fn` on a one-connection client of database `name`. */
  async on<T>(name: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    const sql = postgres(withDatabase(this.url, name), { max: 1, onnotice: () => {} });
    try {
      return await fn(sql);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  async close(): Promise<void> {
    await this.release();
  }
}
