/**
 * The one mapping from database errors to HTTP, driven by real Postgres errors
 * raised inside handlers and answered over real HTTP: the caller's fault is a
 * 4xx with a generic detail, the server's fault a 500, an outage a 503.
 */
import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { action, defineFunction, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";

const silent = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silent;
  },
  enabled: () => false,
};

Deno.test("database errors over HTTP: SQLSTATE class decides the status, nothing leaks", async (t) => {
  await using db = await freshDatabase();
  await db.sql`create table public.secret_things (id int primary key, n int check (n > 0))`;
  await db.sql`insert into public.secret_things values (1, 1)`;
  await db.sql`revoke all on public.secret_things from anon`;
  const statements: Record<string, string> = {
    "22012": "select 1 / 0",
    "22003": "select 99999999999::int",
    "22P02": "select 'nope'::int",
    "23505": "insert into public.secret_things values (1, 1)",
    "23514": "insert into public.secret_things values (2, 0)",
    "23502": "insert into public.secret_things values (null, 1)",
    "42501": "set local role anon; select * from public.secret_things",
    "42P01": "select * from public.no_such_secret_table",
    "42601": "selec 1",
  };
  const fn = defineFunction({
    name: "errs",
    auth: "none",
    actions: {
      run: action({
        input: z.object({ state: z.string() }),
        handler: async ({ state }, { db }) =>
          await (await db.sql()).begin((tx) => tx.unsafe(statements[state]!)),
      }),
    },
  }, {
    env: readEnv((k) => ({ SUPABASE_DB_URL: db.url } as Record<string, string>)[k]),
    log: silent,
  });
  await using server = serve(fn.fetch);
  await using _pool = { [Symbol.asyncDispose]: () => fn.close() };
  const expected: [string, number, string][] = [
    ["22012", 422, "invalid_value"],
    ["22003", 422, "invalid_value"],
    ["22P02", 422, "invalid_value"],
    ["23505", 409, "conflict"],
    ["23514", 422, "constraint_violation"],
    ["23502", 422, "constraint_violation"],
    ["42501", 403, "insufficient_privilege"],
    // The server's own mistakes stay 500.
    ["42P01", 500, "internal_error"],
    ["42601", 500, "internal_error"],
  ];
  for (const [state, status, code] of expected) {
    await t.step(`${state} -> ${status} ${code}`, async () => {
      const res = await fetch(`${server.url}/functions/v1/errs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action: "run", payload: { state } }),
      });
      const text = await res.text();
      assert.equal(res.status, status, text);
      assert.equal(JSON.parse(text).code, code);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      for (const leak of ["secret", "select", "insert", "relation", 'constraint "', state]) {
        assert.ok(!text.includes(leak), `${state} leaks "${leak}": ${text}`);
      }
    });
  }

  await t.step("an unreachable database is 503 with Retry-After", async () => {
    const down = defineFunction({
      name: "errs",
      auth: "none",
      actions: {
        run: action({
          input: z.object({}),
          handler: async (_i, { db }) => {
            const sql = await db.sql();
            return await sql`select 1`;
          },
        }),
      },
    }, {
      env: readEnv((k) =>
        ({
          SUPABASE_DB_URL: `postgresql://postgres:postgres@127.0.0.1:${freePort()}/postgres`,
        } as Record<string, string>)[k]
      ),
      log: silent,
    });
    try {
      const res = await down.fetch(
        new Request("http://x/errs", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: '{"action":"run"}',
        }),
      );
      assert.equal(res.status, 503, await res.clone().text());
      assert.equal((await res.json()).code, "database_unavailable");
      assert.equal(res.headers.get("retry-after"), "5");
    } finally {
      await down.close();
    }
  });
});
