/**
 * Row changes as events (events.append_row_change): the notes example, a local
 * stand-in for Supabase Storage's `storage.objects` (the snippet in
 * docs/events.md, run verbatim), and the note_activity read model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type postgres from "npm:postgres@3";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

type Sql = postgres.Sql;

const asUser = <T>(sql: Sql, user: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  sql.begin(async (tx) => {
    await tx.unsafe("set local role authenticated");
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: user })}, true)`;
    return await fn(tx);
  });

const eventsOf = (sql: Sql, prefix: string) =>
  sql`select position, stream, type, data, metadata, version from events.events
    where starts_with(stream, ${prefix}) order by position`;

Deno.test("events triggers: notes insert, update and delete become events in the writer's transaction", async () => {
  await using db = await freshDatabase();
  const user = crypto.randomUUID();
  const [note] = await asUser(
    db.sql,
    user,
    (tx) => tx`insert into public.notes (body) values ('hi') returning id`,
  );
  await asUser(
    db.sql,
    user,
    (tx) => tx`update public.notes set body = 'edited' where id = ${note!.id}`,
  );
  await assert.rejects(asUser(db.sql, user, async (tx) => {
    await tx`insert into public.notes (body) values ('rolled back')`;
    throw new Error("abort");
  }));
  await asUser(db.sql, user, (tx) => tx`delete from public.notes where id = ${note!.id}`);
  const rows = await eventsOf(db.sql, "notes-");
  assert.deepEqual(rows.map((r) => [r.stream, r.type, r.version]), [
    [`notes-${note!.id}`, "notes.inserted", "1"],
    [`notes-${note!.id}`, "notes.updated", "2"],
    [`notes-${note!.id}`, "notes.deleted", "3"],
  ], "the rolled-back insert left no event");
  assert.equal(rows[0]!.data.body, "hi");
  assert.equal(rows[0]!.data.user_id, user);
  assert.equal(rows[1]!.data.body, "edited");
  assert.equal(rows[2]!.data.body, "edited", "a delete carries the old row");
  assert.deepEqual(rows[1]!.metadata, { schema: "public", table: "notes", op: "update" });
  // The writer needed no privilege on schema events.
  await assert.rejects(
    asUser(db.sql, user, (tx) => tx`select * from events.events`),
    /permission denied/,
  );
});

Deno.test("events triggers: the writer's trace context rides along; a row too large refuses the write", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.blobs (id bigint primary key, body text)`;
  await db.sql`create trigger blobs_events after insert on public.blobs
    for each row execute function events.append_row_change('blob')`;
  const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  await db.sql.begin(async (tx) => {
    await tx`select set_config('events.traceparent', ${trace}, true)`;
    await tx`insert into public.blobs values (1, 'small')`;
  });
  await assert.rejects(
    db.sql`insert into public.blobs values (2, repeat('x', 2 * 1024 * 1024))`,
    (e: { code?: string }) => e.code === "54000",
  );
  const rows = await eventsOf(db.sql, "blob-");
  assert.deepEqual(rows.map((r) => [r.stream, r.type, r.metadata.traceparent]), [
    ["blob-1", "blobs.inserted", trace],
  ]);
  const [{ n }] = await db.sql`select count(*)::int as n from public.blobs`;
  assert.equal(n, 1, "the write and its event commit together or not at all");
  // A missing id column or stream prefix is a configuration error, not a silent drop.
  await db.sql`create table public.no_id (k int)`;
  await db.sql`create trigger no_id_events after insert on public.no_id
    for each row execute function events.append_row_change('x')`;
  await assert.rejects(db.sql`insert into public.no_id values (1)`, /no value in column id/);
});

/** The docs' ```sql block that starts with `start`. */
async function docsBlock(start: string): Promise<string> {
  const text = await Deno.readTextFile(join(PROJECT_ROOT, "docs/events.md"));
  const block = [...text.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!)
    .find((b) => b.startsWith(start));
  assert.ok(block, `docs/events.md has a sql block starting with ${start}`);
  return block;
}

Deno.test("events triggers: the docs' storage.objects snippet, on a local stand-in table", async () => {
  await using db = await freshDatabase();
  // A stand-in with the columns of Supabase Storage's table that matter here.
  await db.sql.unsafe(`
    create schema storage;
    create table storage.objects (
      id uuid primary key default gen_random_uuid(),
      bucket_id text not null,
      name text not null,
      owner uuid,
      metadata jsonb,
      created_at timestamptz default now()
    );`);
  await db.sql.unsafe(await docsBlock("create trigger objects_events"));
  const [obj] = await db.sql`insert into storage.objects (bucket_id, name, metadata)
    values ('avatars', 'u1/me.png', '{"size": 1234}') returning id`;
  await db.sql`update storage.objects set metadata = '{"size": 99}' where id = ${obj!.id}`;
  await db.sql`delete from storage.objects where id = ${obj!.id}`;
  const rows = await eventsOf(db.sql, "storage-");
  assert.deepEqual(rows.map((r) => [r.stream, r.type, r.version]), [
    [`storage-object-${obj!.id}`, "storage.object.inserted", "1"],
    [`storage-object-${obj!.id}`, "storage.object.updated", "2"],
    [`storage-object-${obj!.id}`, "storage.object.deleted", "3"],
  ]);
  assert.equal(rows[0]!.data.bucket_id, "avatars");
  assert.deepEqual(rows[1]!.metadata, { schema: "storage", table: "objects", op: "update" });
});

Deno.test("events projection: note_activity from notes events, applied with the ack, readable only by its owner", async () => {
  await using db = await freshDatabase();
  const [alice, bob] = [crypto.randomUUID(), crypto.randomUUID()];
  await db.sql`select events.subscribe('note-activity', '{"streamPrefix": "notes-"}')`;
  const ids: string[] = [];
  for (const body of ["one", "two", "three"]) {
    const [n] = await asUser(
      db.sql,
      alice,
      (tx) => tx`insert into public.notes (body) values (${body}) returning id`,
    );
    ids.push(n!.id);
  }
  await asUser(db.sql, bob, (tx) => tx`insert into public.notes (body) values ('bob')`);
  await asUser(db.sql, alice, (tx) => tx`delete from public.notes where id = ${ids[0]!}`);
  await asUser(db.sql, alice, (tx) => tx`update public.notes set body = 'x' where id = ${ids[1]!}`);

  // The projection's loop: claim, then apply and ack in one transaction.
  const project = async (stale = false) => {
    while (true) {
      await settled(db.sql);
      const batch = await db.sql`select * from events.claim_batch('note-activity', 2)`;
      if (batch.length === 0) return;
      const token = stale ? crypto.randomUUID() : batch[0]!.lease_token;
      const positions = batch.map((e) => e.position);
      const applied = await db.sql.begin(async (tx) => {
        const [{ n }] = await tx`select events.apply_note_activity(${positions}::bigint[]) as n`;
        const [{ acked }] =
          await tx`select events.ack('note-activity', ${token}, ${positions}::bigint[]) as acked`;
        if (acked !== positions.length) throw new Error("lease lost: roll the read model back");
        return n;
      }).catch(() => -1);
      if (stale) {
        assert.equal(applied, -1);
        return;
      }
      assert.equal(applied, positions.length);
    }
  };
  await project(true); // a worker whose lease is gone writes nothing
  assert.equal((await db.sql`select count(*)::int as n from public.note_activity`)[0]!.n, 0);
  await db.sql`update events.subscription_streams set lease_until = now() - interval '1 s'`;
  await project();
  const rows = await db.sql`select user_id, notes_count, last_activity_at from public.note_activity
    order by notes_count desc`;
  assert.deepEqual(rows.map((r) => [r.user_id, r.notes_count]), [[alice, 2], [bob, 1]]);
  const [{ last }] = await db.sql`select max(created_at) as last from events.events
    where data ->> 'user_id' = ${alice}`;
  assert.equal(rows[0]!.last_activity_at.getTime(), (last as Date).getTime());

  // RLS: each user reads only their own row and writes none.
  const mine = await asUser(
    db.sql,
    bob,
    (tx) => tx`select user_id, notes_count from public.note_activity`,
  );
  assert.deepEqual(mine.map((r) => [r.user_id, r.notes_count]), [[bob, 1]]);
  await assert.rejects(
    asUser(db.sql, bob, (tx) => tx`update public.note_activity set notes_count = 100`),
    /permission denied/,
  );
  await assert.rejects(
    db.sql.begin(async (tx) => {
      await tx.unsafe("set local role anon");
      await tx`select * from public.note_activity`;
    }),
    /permission denied/,
  );
});

async function settled(sql: Sql): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (true) {
    const [{ ok }] = await sql`select not exists (select 1 from events.events
      where position >= events.settled_bound()) as ok`;
    if (ok) return;
    if (Date.now() > deadline) throw new Error("events never settled");
    await new Promise((r) => setTimeout(r, 10));
  }
}
