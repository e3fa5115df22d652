/**
 * Start-up faults of `deno task dev`, run as the real command: a port in use,
 * a malformed config.toml and a migration with a syntax error each stop
 * start-up with a clear message and a non-zero exit.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { prepareDatabase } from "../../local/database/mod.ts";
import { freePort, freshDatabase, withDatabase } from "../_harness/database.ts";
import { fixtureArgs, runScript, tempDir } from "./support/helpers.ts";

Deno.test("dev: a port in use names the port and the flag to change it", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const gateway = await runScript("dev.ts", [
    ...fixtureArgs(dir.path, port),
    "--no-cron",
  ]);
  assert.equal(gateway.code, 1);
  assert.match(gateway.stderr, new RegExp(`port ${port} \\(gateway\\) is already in use`));
  assert.match(gateway.stderr, /pass --port <port>/);

  const db = await runScript("dev.ts", [
    ...fixtureArgs(dir.path, freePort()),
    "--db-port",
    String(port),
    "--no-cron",
  ]);
  assert.equal(db.code, 1);
  assert.match(db.stderr, new RegExp(`port ${port} \\(embedded Postgres\\) is already in use`));
  assert.match(db.stderr, /pass --db-port <port>/);
});

Deno.test("dev: a malformed config.toml names the file and line", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "supabase"));
  const file = join(dir.path, "supabase", "config.toml");
  await Deno.writeTextFile(file, `[api]\nport = = 3\n`);
  const out = await runScript("dev.ts", ["--workdir", dir.path, "--no-cron"]);
  assert.equal(out.code, 1);
  assert.match(out.stderr, new RegExp(`error: ${file}:2:\\d+: invalid TOML`));
});

async function projectWithMigrations(root: string, files: Record<string, string>) {
  await Deno.mkdir(join(root, "supabase", "migrations"), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(join(root, "supabase", "migrations", name), text);
  }
}

Deno.test("dev: a migration with a syntax error stops start-up and leaves no trace", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  await projectWithMigrations(dir.path, {
    "20990101000000_good.sql": "create table public.good_one (id int);",
    "20990101000001_bad.sql": "create table public.bad_one (id int);\nselec 1;",
  });
  const out = await runScript("dev.ts", [
    "--workdir",
    dir.path,
    "--data-dir",
    join(dir.path, ".local"),
    "--port",
    String(freePort()),
    "--no-cron",
  ], { SUPABASE_DB_URL: db.url });
  assert.equal(out.code, 1);
  assert.match(
    out.stderr,
    /migration 20990101000001_bad\.sql failed: syntax error at or near "selec"/,
  );
  const [state] = await db.sql`select
    to_regclass('public.good_one') is not null as good,
    to_regclass('public.bad_one') is not null as bad,
    (select array_agg(version order by version) from supabase_migrations.schema_migrations
      where version like '2099%') as recorded`;
  assert.deepEqual(state, { good: true, bad: false, recorded: ["20990101000000"] });
});

Deno.test("database step: a fresh database gets the bootstrap, migrations and seed once", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const name = `${db.name}_fresh`;
  await db.sql.unsafe(`create database ${name}`);
  const url = withDatabase(db.url, name);
  try {
    await projectWithMigrations(dir.path, {
      "20990101000000_things.sql": "create table public.things (label text);",
    });
    await Deno.writeTextFile(
      join(dir.path, "supabase", "seed.sql"),
      "insert into public.things values ('seeded');",
    );
    const options = {
      dbUrl: url,
      dataDir: join(dir.path, ".local"),
      port: 0,
      workdir: dir.path,
      restartDelayMs: 0,
      log: () => {},
    };
    const first = await prepareDatabase(options);
    assert.deepEqual(first.applied.map((m) => m.name), ["things"]);
    assert.equal(first.seeded, true);
    await first.stop();
    const second = await prepareDatabase(options);
    assert.equal(second.applied.length, 0);
    assert.equal(second.seeded, false);
    await second.stop();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`select label from public.things`;
      assert.deepEqual(rows.map((r) => r.label), ["seeded"]);
      const [roles] = await sql`select count(*)::int as n from pg_roles
        where rolname in ('anon', 'authenticated', 'service_role')`;
      assert.equal(roles!.n, 3);
    } finally {
      await sql.end();
    }
  } finally {
    await db.sql.unsafe(`drop database if exists ${name} with (force)`);
  }
});
