/**
 * The real Supabase CLI (npm `supabase@3`, no Docker needed for these commands)
 * against our databases: it loads supabase/config.toml, `db push` applies our
 * migrations to a bootstrapped database, and `migration list` agrees with what
 * our own migrator recorded.
 */
import assert from "node:assert/strict";
import { listMigrations } from "../../local/database/mod.ts";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

async function cli(args: string[]): Promise<{ ok: boolean; out: string }> {
  const res = await new Deno.Command("npx", {
    args: ["-y", "supabase@3", ...args, "--yes", "--output-format=json"],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  }).output();
  const out = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
  return { ok: res.success, out };
}

Deno.test("supabase CLI: migration list agrees with our migrator; db push applies our migrations", async () => {
  const versions = (await listMigrations()).map((m) => m.version);
  assert.ok(versions.length > 0);

  // A database migrated by local/migrate.ts (the template): the CLI sees every
  // version as applied both locally and remotely.
  await using migrated = await freshDatabase();
  const listed = await cli(["migration", "list", `--remote=${migrated.url}`]);
  assert.ok(listed.ok, listed.out);
  for (const v of versions) assert.match(listed.out, new RegExp(v), `version ${v} missing`);

  // A bootstrapped database with no migrations: `db push` applies them all,
  // recording exactly what our migrator records.
  const recorded = await migrated.sql`select version, name, statements
    from supabase_migrations.schema_migrations order by version`;
  await using empty = await freshDatabase({ migrated: false });
  const pushed = await cli(["db", "push", `--remote=${empty.url}`, "--include-all"]);
  assert.ok(pushed.ok, pushed.out);
  const after = await empty.sql`select version, name, statements
    from supabase_migrations.schema_migrations order by version`;
  assert.deepEqual(after.map((r) => r.version), versions);
  assert.deepEqual(after.map((r) => r.name), recorded.map((r) => r.name));
  assert.deepEqual(
    after.map((r) => (r.statements as string[]).length),
    recorded.map((r) => (r.statements as string[]).length),
    "statement splitting differs from the CLI's",
  );
  const [notes] = await empty.sql`select to_regclass('public.notes') is not null as present`;
  assert.equal(notes!.present, true);
});
