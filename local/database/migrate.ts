/**
 * Applies the local bootstrap and `supabase/migrations` to a database, recording
 * each migration in `supabase_migrations.schema_migrations` exactly as
 * `supabase db push` does (version, name, statements), so
 * `supabase migration list --db-url <url>` agrees with what ran here.
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { PROJECT_ROOT } from "../project/mod.ts";
import { splitStatements } from "./sql_split.ts";

/** One migration file. */
export interface Migration {
  version: string;
  name: string;
  file: string;
}

/** A migration that failed; the database is left as it was before that file. */
export class MigrationError extends Error {
  constructor(readonly file: string, readonly pgMessage: string, options?: ErrorOptions) {
    super(`migration ${file} failed: ${pgMessage}`, options);
    this.name = "MigrationError";
  }
}

/** Default folders of this project. */
const MIGRATIONS_DIR = join(PROJECT_ROOT, "supabase", "migrations");
const BOOTSTRAP_FILE = join(import.meta.dirname!, "bootstrap.sql");
const SEED_FILE = join(PROJECT_ROOT, "supabase", "seed.sql");

/** Lists `<version>_<name>.sql` files in version order (the CLI's naming rule). */
export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = /^(\d+)_(.+)\.sql$/.exec(entry.name);
    if (entry.isFile && match) {
      found.push({ version: match[1]!, name: match[2]!, file: join(dir, entry.name) });
    }
  }
  return found.sort((a, b) => a.version.localeCompare(b.version));
}

function describe(error: unknown): string {
  if (error && typeof error === "object" && "message" in error) {
    const e = error as { message: string; position?: string; detail?: string; hint?: string };
    return [e.message, e.detail, e.hint].filter(Boolean).join(" | ");
  }
  return String(error);
}

type Sql = ReturnType<typeof postgres>;

/** Runs the local bootstrap (Supabase roles, auth helpers, extensions schema). */
export async function applyBootstrap(sql: Sql, file = BOOTSTRAP_FILE): Promise<void> {
  // Concurrent bootstraps (several test processes) would race on CREATE ROLE.
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('supabase-starter:bootstrap'))`;
    await tx.unsafe(await Deno.readTextFile(file)).simple();
  });
}

/** Result of {@link applyMigrations}. */
export interface MigrateResult {
  applied: Migration[];
  skipped: number;
}

/**
 * Applies every migration not yet recorded, each in its own transaction
 * together with its bookkeeping row, so a failure leaves no trace of that file.
 */
export async function applyMigrations(
  sql: Sql,
  options: { dir?: string; onApplied?: (m: Migration, ms: number) => void } = {},
): Promise<MigrateResult> {
  const migrations = await listMigrations(options.dir);
  const rows = await sql<{ version: string }[]>`
    select version from supabase_migrations.schema_migrations`;
  const done = new Set(rows.map((r) => r.version));
  const applied: Migration[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    const text = await Deno.readTextFile(migration.file);
    const started = performance.now();
    try {
      await sql.begin(async (tx) => {
        await tx.unsafe(text).simple();
        await tx`
          insert into supabase_migrations.schema_migrations (version, name, statements)
          values (${migration.version}, ${migration.name}, ${splitStatements(text)})`;
      });
    } catch (error) {
      throw new MigrationError(`${migration.version}_${migration.name}.sql`, describe(error), {
        cause: error,
      });
    }
    applied.push(migration);
    options.onApplied?.(migration, performance.now() - started);
  }
  return { applied, skipped: migrations.length - applied.length };
}

/** Runs `supabase/seed.sql` if it exists (the CLI seeds fresh databases only). */
export async function applySeed(sql: Sql, file = SEED_FILE): Promise<boolean> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return false;
  }
  if (!text.trim()) return false;
  await sql.begin(async (tx) => {
    await tx.unsafe(text).simple();
  });
  return true;
}
