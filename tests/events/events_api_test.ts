/**
 * The notes example end to end: `api` note commands (create, update, delete) as
 * real users under RLS, the trigger's events in the log, `queue-worker` over HTTP
 * driving the note-activity projection, and `notes.activity` reading the read
 * model under RLS.
 */
import assert from "node:assert/strict";
import { defineFunction, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { apiSpec } from "../../supabase/functions/api/index.ts";
import { jobDefinitions } from "../../supabase/functions/queue-worker/jobs.ts";
import { queueWorkerSpec } from "../../supabase/functions/queue-worker/spec.ts";
import { subscriptionDefinitions } from "../../supabase/functions/queue-worker/subscriptions.ts";
import { freshDatabase } from "../_harness/database.ts";
import { makeProject, signToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

Deno.test("events api: note commands append events; the projection feeds notes.activity under RLS", async () => {
  await using db = await freshDatabase();
  const project = await makeProject({ SUPABASE_DB_URL: db.url });
  const env = readEnv((k) => project.env[k]);
  const api = defineFunction(apiSpec, { env });
  const worker = defineFunction(
    queueWorkerSpec({ jobs: jobDefinitions(), subscriptions: subscriptionDefinitions() }),
    { env },
  );
  await using apiServer = serve(api.fetch);
  await using workerServer = serve(worker.fetch);
  await using _pools = {
    [Symbol.asyncDispose]: async () => {
      await api.close();
      await worker.close();
    },
  };
  const alice = crypto.randomUUID();
  const bob = crypto.randomUUID();
  const tokens = {
    [alice]: await signToken(project.es256, { sub: alice }),
    [bob]: await signToken(project.es256, { sub: bob }),
  };
  const call = async (user: string, action: string, payload: unknown) => {
    const res = await fetch(`${apiServer.url}/functions/v1/api`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens[user]}` },
      body: JSON.stringify({ action, payload }),
    });
    return { status: res.status, body: await res.json() };
  };
  const drainEvents = async () => {
    const res = await fetch(`${workerServer.url}/functions/v1/queue-worker`, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: project.cronSecret },
      body: JSON.stringify({ wait: true }),
    });
    assert.equal(res.status, 200);
    return (await res.json()).data.events;
  };

  // Before any note: an empty read model.
  assert.deepEqual((await call(alice, "notes.activity", {})).body.data, {
    notesCount: 0,
    lastActivityAt: null,
  });
  const a1 = (await call(alice, "notes.create", { body: "one" })).body.data;
  const a2 = (await call(alice, "notes.create", { body: "two" })).body.data;
  await call(bob, "notes.create", { body: "bob's" });
  const edited = await call(alice, "notes.update", { id: a1.id, body: "one, edited" });
  assert.equal(edited.status, 200);
  assert.equal(edited.body.data.body, "one, edited");
  assert.equal((await call(alice, "notes.delete", { id: a2.id })).status, 200);

  // RLS: bob cannot edit or delete alice's note (404: not his to see), nor a missing one.
  for (
    const [action, payload] of [
      ["notes.update", { id: a1.id, body: "hijack" }],
      ["notes.delete", { id: a1.id }],
      ["notes.delete", { id: 999_999 }],
    ] as const
  ) {
    const res = await call(bob, action, payload);
    assert.equal(res.status, 404, action);
    assert.equal(res.body.code, "note_not_found");
  }
  // Bad input: 422, nothing changes.
  for (const payload of [{ id: "x" }, { id: 0 }, { id: 1.5 }, {}]) {
    assert.equal((await call(alice, "notes.delete", payload)).status, 422);
  }
  assert.equal((await call(alice, "notes.update", { id: a1.id, body: "  " })).status, 422);

  // The trigger appended one event per change, in each note's stream.
  const events = await db.sql`select stream, type, version from events.events
    where stream = ${"notes-" + a1.id} or stream = ${"notes-" + a2.id} order by "position"`;
  assert.deepEqual(events.map((e) => [e.stream, e.type, Number(e.version)]), [
    [`notes-${a1.id}`, "notes.inserted", 1],
    [`notes-${a2.id}`, "notes.inserted", 1],
    [`notes-${a1.id}`, "notes.updated", 2],
    [`notes-${a2.id}`, "notes.deleted", 2],
  ]);

  // The read model trails the log until the worker runs the projection.
  assert.equal((await call(alice, "notes.activity", {})).body.data.notesCount, 0);
  const summary = await drainEvents();
  assert.equal(summary.handled, 5);
  const activity = (await call(alice, "notes.activity", {})).body.data;
  assert.equal(activity.notesCount, 1);
  assert.ok(Date.parse(activity.lastActivityAt) > 0);
  assert.equal((await call(bob, "notes.activity", {})).body.data.notesCount, 1);
  // A second run finds nothing new: each event counted once.
  assert.equal((await drainEvents()).claimed, 0);
  assert.equal((await call(alice, "notes.activity", {})).body.data.notesCount, 1);
});
