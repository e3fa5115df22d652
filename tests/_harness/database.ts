/**
 * Real Postgres for tests. `deno task test` starts one embedded cluster, builds
 * a template database (bootstrap + every migration, exactly as in
 * supabase/migrations) and exports STARTER_TEST_ADMIN_URL/STARTER_TEST_TEMPLATE.
 * Each test then takes its own database cloned from that template.
 *
 * Run on its own (`deno test -A tests/x.test.ts`), the harness starts a private
 * cluster on a free port and kills it when the process exits.
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { applyBootstrap, applyMigrations, startPostgres } from "../../local/database/mod.ts";

/** A database a test owns; `drop()` removes it. */
export interface TestDatabase {
  url: string;
  name: string;
  sql: postgres.Sql;
  [Symbol.asyncDispose](): Promise<void>;
  drop(): Promise<void>;
}

/** Picks a free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Replaces the database name in a connection URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Builds a database holding the bootstrap and all migrations; returns its name. */
export async function buildTemplate(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const sql = postgres(withDatabase(adminUrl, name), { max: 1, onnotice: () => {} });
  try {
    await applyBootstrap(sql);
    await applyMigrations(sql);
  } finally {
    await sql.end();
  }
}

let privateCluster: Promise<{ adminUrl: string; template: string }> | undefined;

async function cluster(): Promise<{ adminUrl: string; template: string }> {
  const adminUrl = Deno.env.get("STARTER_TEST_ADMIN_URL");
  const template = Deno.env.get("STARTER_TEST_TEMPLATE");
  if (adminUrl && template) return { adminUrl, template };
  privateCluster ??= (async () => {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "starter-test-pg-" });
    await Deno.chmod(dir, 0o755);
    const server = await startPostgres({
      dataDir: join(dir, "data"),
      port: freePort(),
      ephemeral: true,
      background: true,
    });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.kill(server.pid, "SIGKILL");
      } catch { /* gone */ }
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* best effort */ }
    });
    await buildTemplate(server.url, "starter_template");
    return { adminUrl: server.url, template: "starter_template" };
  })();
  return await privateCluster;
}

/**
 * Creates a fresh database from the migrated template, or, with
 * `{ migrated: false }`, an empty one holding only the local bootstrap.
 */
export async function freshDatabase(
  options: { migrated?: boolean } = {},
): Promise<TestDatabase> {
  const { adminUrl, template } = await cluster();
  const name = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    // CREATE DATABASE ... TEMPLATE fails (55006) while another session is connected
    // to the template; that passes, so it is retried until a generous deadline.
    // Any other error is real and thrown at once.
    const deadline = Date.now() + 60_000;
    while (true) {
      try {
        await admin.unsafe(
          options.migrated === false
            ? `create database ${name}`
            : `create database ${name} template ${template}`,
        );
        break;
      } catch (error) {
        if ((error as { code?: string }).code !== "55006" || Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  if (options.migrated === false) await applyBootstrap(sql);
  const drop = async () => {
    await sql.end({ timeout: 5 });
    const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      await a.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await a.end();
    }
  };
  return { url, name, sql, drop, [Symbol.asyncDispose]: drop };
}
