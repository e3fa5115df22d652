/**
 * supabase/migrations/20261124001003_queue_cron.sql where pg_cron is present but
 * unusable, and the command it schedules.
 *
 * The embedded Postgres has no pg_cron or pg_net (and Debian's postgresql-*-cron
 * must not become a hidden test dependency), so each test database gets stand-ins
 * for what the migration reads and calls:
 *   - pg_extension rows for pg_cron (at the version of the case) and pg_net: the
 *     state CREATE EXTENSION leaves, so `create extension if not exists` skips.
 *     pg_available_extensions cannot be stood in for (it lists control files in the
 *     server's share directory), hence rows in this database's own catalog, which
 *     go away with the database;
 *   - `cron.database_name` set in the session, as the preloaded library defines it
 *     (unset: the library was not preloaded);
 *   - `cron.schedule` raising what pg_cron raises in the case (messages and SQLSTATEs
 *     from pg_cron's source), or recording the job in a stand-in `cron.job`;
 *   - `net.http_post` recording each call (the network edge) and a `vault` table
 *     in place of the `vault.decrypted_secrets` view.
 * The real migration file is then applied to that database.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import { freshDatabase, type TestDatabase } from "../_harness/database.ts";

const MIGRATION = new URL(
  "../../supabase/migrations/20261124001003_queue_cron.sql",
  import.meta.url,
);

interface Case {
  /** pg_cron's version in pg_extension. */
  version: string;
  /** cron.database_name; null: pg_cron not preloaded; "here": this database. */
  cronDb: string | null;
  /** What the stand-in cron.schedule raises, or null to record the job. */
  raises: [sqlstate: string, message: string] | null;
}

async function standIns(db: TestDatabase, c: Case): Promise<void> {
  await db.sql.unsafe(`
    insert into pg_catalog.pg_extension (oid, extname, extowner, extnamespace, extrelocatable,
      extversion)
    values (4000000001, 'pg_cron', 10, 'pg_catalog'::regnamespace, false, '${c.version}'),
      (4000000002, 'pg_net', 10, 'extensions'::regnamespace, false, '0.14.0');
    create schema cron;
    create table cron.job (jobid bigserial primary key, jobname text unique, schedule text,
      command text);
    create schema net;
    create table net.calls (url text, headers jsonb, body jsonb, timeout_milliseconds int);
    create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
      headers jsonb default '{}', timeout_milliseconds int default 5000) returns bigint
    language sql as $$
      insert into net.calls values (url, headers, body, timeout_milliseconds) returning 1
    $$;
    create schema vault;
    create table vault.decrypted_secrets (name text primary key, decrypted_secret text);
  `);
  const body = c.raises
    ? `raise exception using errcode = '${c.raises[0]}', message = $m$${c.raises[1]}$m$;`
    : `insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
         on conflict (jobname) do update set schedule = excluded.schedule,
           command = excluded.command;
       return 1;`;
  await db.sql.unsafe(`
    create function cron.schedule(job_name text, schedule text, command text) returns bigint
    language plpgsql as $f$ begin ${body} end $f$`);
}

/** Applies the real migration file on one connection that has the case's settings. */
async function migrate(db: TestDatabase, c: Case): Promise<string[]> {
  const notices: string[] = [];
  const sql = postgres(db.url, { max: 1, onnotice: (n) => notices.push(n.message) });
  try {
    if (c.cronDb !== null) {
      const name = c.cronDb === "here" ? db.name : c.cronDb;
      await sql.unsafe(`set cron.database_name = '${name}'`);
    }
    await sql.unsafe(await Deno.readTextFile(MIGRATION)).simple();
  } finally {
    await sql.end();
  }
  return notices;
}

const scheduled = async (db: TestDatabase) =>
  await db.sql<{ schedule: string; command: string }[]>`select schedule, command from cron.job`;

Deno.test("queue cron: pg_cron present but unusable gives a notice, never an error", async () => {
  const usable = { version: "1.6", cronDb: "here" };
  const cases: [string, Case, RegExp][] = [
    [
      "not in shared_preload_libraries",
      {
        version: "1.6",
        cronDb: null,
        raises: ["XX000", "pg_cron can only be loaded via shared_preload_libraries"],
      },
      /pg_cron is installed but not loaded \(add it to shared_preload_libraries/,
    ],
    [
      "set up for another database",
      {
        version: "1.6",
        cronDb: "postgres",
        raises: ["P0001", "can only create extension in database postgres"],
      },
      /pg_cron runs in database "postgres" \(cron.database_name\), not "t_/,
    ],
    [
      "too old for second-level schedules",
      { version: "1.4-1", cronDb: "here", raises: ["22023", "invalid schedule: 5 seconds"] },
      /pg_cron 1\.4-1 cannot run second-level schedules \(needs 1\.5 or later\)/,
    ],
    // The same refusals where the checks above cannot see them coming (a setting
    // copied into postgresql.conf without the library, a build without seconds).
    [
      "schedule refuses '5 seconds'",
      { ...usable, raises: ["22023", "invalid schedule: 5 seconds"] },
      /cannot schedule here \(22023: invalid schedule: 5 seconds\)/,
    ],
    [
      "library refuses to load",
      { ...usable, raises: ["XX000", "pg_cron can only be loaded via shared_preload_libraries"] },
      /cannot schedule here \(XX000: pg_cron can only be loaded via shared_preload_libraries\)/,
    ],
    [
      "install script refuses this database",
      { ...usable, raises: ["P0001", "can only create extension in database postgres"] },
      /cannot schedule here \(P0001: can only create extension in database postgres\)/,
    ],
    [
      "setting unknown",
      {
        ...usable,
        raises: ["42704", 'unrecognized configuration parameter "cron.database_name"'],
      },
      /cannot schedule here \(42704: unrecognized configuration parameter/,
    ],
  ];
  for (const [name, c, notice] of cases) {
    await using db = await freshDatabase();
    await standIns(db, c);
    const [{ before }] = await db.sql`select count(*)::int as before from pg_extension`;
    const notices = await migrate(db, c);
    assert.ok(notices.some((n) => notice.test(n)), `${name}: ${notices.join(" | ")}`);
    assert.ok(notices.some((n) => /queue-worker is not scheduled/.test(n)), name);
    assert.equal((await scheduled(db)).length, 0, `${name}: nothing scheduled`);
    const [{ after }] = await db.sql`select count(*)::int as after from pg_extension`;
    assert.equal(after, before, `${name}: no extension created`);
  }
});

Deno.test("queue cron: usable pg_cron is scheduled; other errors still fail the migration", async () => {
  {
    await using db = await freshDatabase();
    const c: Case = { version: "1.6.4", cronDb: "here", raises: null };
    await standIns(db, c);
    const notices = await migrate(db, c);
    assert.ok(!notices.some((n) => /not scheduled/.test(n)), notices.join(" | "));
    const jobs = await scheduled(db);
    assert.deepEqual(jobs.map((j) => j.schedule), ["5 seconds"]);
  }
  {
    await using db = await freshDatabase();
    const c: Case = { version: "1.6", cronDb: "here", raises: ["42501", "permission denied"] };
    await standIns(db, c);
    await assert.rejects(migrate(db, c), /permission denied/);
  }
});

Deno.test("queue cron: a run without both Vault secrets fails visibly and posts nothing", async () => {
  await using db = await freshDatabase();
  const c: Case = { version: "1.6", cronDb: "here", raises: null };
  await standIns(db, c);
  await migrate(db, c);
  const [job] = await scheduled(db);
  // The command exactly as pg_cron would run it.
  const run = () => db.sql.unsafe(job!.command);
  const secrets: [url: string | null, key: string | null, missing: string | null][] = [
    [null, null, "queue_worker_url"],
    ["http://127.0.0.1:9/functions/v1/queue-worker", null, "queue_worker_key"],
    ["http://127.0.0.1:9/functions/v1/queue-worker", "", "queue_worker_key"],
    [null, "sb_secret_test", "queue_worker_url"],
    ["", "sb_secret_test", "queue_worker_url"],
    ["http://127.0.0.1:9/functions/v1/queue-worker", "sb_secret_test", null],
  ];
  for (const [url, key, missing] of secrets) {
    await db.sql`truncate vault.decrypted_secrets, net.calls`;
    for (const [name, value] of [["queue_worker_url", url], ["queue_worker_key", key]]) {
      if (value !== null) {
        await db.sql`insert into vault.decrypted_secrets values (${name}, ${value})`;
      }
    }
    if (missing) {
      await assert.rejects(run(), (e: Error & { code?: string }) => {
        assert.equal(e.code, "55000");
        assert.match(e.message, new RegExp(`Vault secret ${missing} is missing or empty`));
        return true;
      });
      assert.equal((await db.sql`select * from net.calls`).length, 0, `${url} ${key}`);
    } else {
      await run();
      const calls = await db.sql`select * from net.calls`;
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.url, url);
      assert.equal(calls[0]!.headers.apikey, key);
      assert.equal(calls[0]!.headers["content-type"], "application/json");
    }
  }
});
