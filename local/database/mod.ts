/**
 * The stack's database: the embedded Postgres (its binaries and one server
 * process), the local bootstrap, migrations recorded like `supabase db push`,
 * and the seed. `prepareDatabase` is the whole step in one call.
 */
export {
  applyBootstrap,
  applyMigrations,
  listMigrations,
  type Migration,
  MigrationError,
} from "./migrate.ts";
export { type PostgresServer, startPostgres } from "./postgres_server.ts";
export { type DatabaseHandle, prepareDatabase, type PrepareDatabaseOptions } from "./prepare.ts";
