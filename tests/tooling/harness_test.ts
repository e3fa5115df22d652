import assert from "node:assert/strict";
import { freshDatabase } from "../_harness/database.ts";

Deno.test("harness: fresh database has bootstrap and migrations", async () => {
  await using db = await freshDatabase();
  const roles = await db
    .sql`select rolname from pg_roles where rolname in ('anon','authenticated','service_role') order by 1`;
  assert.deepEqual(roles.map((r) => r.rolname), ["anon", "authenticated", "service_role"]);
  const [m] = await db.sql`select count(*)::int as n from supabase_migrations.schema_migrations`;
  assert.ok(m!.n >= 1);
});
