/**
 * Webhook subscriptions end to end: events become `webhook.deliver` jobs in the
 * transaction that acknowledges them (exactly one job per event), the queue
 * worker sends them to a real loopback server, signed per Standard Webhooks at
 * send time, and the receiver verifies them with `npm:standardwebhooks`. The
 * signing secrets come from the environment (`EVENTS_WEBHOOK_SECRET_<KEY>`).
 */
import assert from "node:assert/strict";
import { Webhook } from "npm:standardwebhooks@1";
import {
  appendEvents,
  defineSubscription,
  defineWebhookSubscription,
  EnvError,
  jobRegistry,
  runSubscriptions,
  runWorker,
  webhookDeliverJob,
  type WebhookEventBody,
  webhookSecretVariable,
  webhookSigningKeys,
} from "../../supabase/functions/_shared/mod.ts";
import { freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";

const quiet = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet };
const SECRET = "whsec_" + btoa("a-test-secret-of-32-bytes-long!!");

Deno.test("events webhooks: one signed delivery per event, verified by the receiver", async () => {
  await using db = await freshDatabase();
  const receiver = new Webhook(SECRET);
  const received: { id: string; body: WebhookEventBody }[] = [];
  const refused: string[] = [];
  await using server = serve(async (req) => {
    const text = await req.text();
    const headers = Object.fromEntries(req.headers);
    try {
      // What a receiver does: verify the signature (and the timestamp's freshness) first.
      receiver.verify(text, headers);
    } catch (error) {
      refused.push(String(error));
      return new Response("bad signature", { status: 400 });
    }
    received.push({ id: headers["webhook-id"]!, body: JSON.parse(text) });
    return new Response(null, { status: 204 });
  });
  const hook = defineWebhookSubscription({
    name: "crm",
    filter: { streamPrefix: "order-" },
    url: `${server.url}/hooks`,
    signingKey: "crm",
  });
  await appendEvents(db.sql, "order-1", [
    { type: "order.placed", data: { total: 5 } },
    { type: "order.paid", data: { amount: 5 } },
  ]);
  await appendEvents(db.sql, "user-1", [{ type: "user.created", data: {} }]);
  const first = await runSubscriptions({ sql: db.sql, subscriptions: [hook], log: quiet as never });
  assert.equal(first.handled, 2);
  // Replaying the subscription enqueues again (at-least-once), with the same webhook-id.
  await db.sql`select events.replay('crm', 0::bigint)`;
  await runSubscriptions({ sql: db.sql, subscriptions: [hook], log: quiet as never });
  const jobs = await db.sql`select payload from queue.jobs where job_type = 'webhook.deliver'
    order by id`;
  assert.equal(jobs.length, 4);

  const registry = jobRegistry([
    webhookDeliverJob({ allowHosts: ["127.0.0.1"], signingKeys: { crm: SECRET } }),
  ]);
  const summary = await runWorker({ sql: db.sql, registry, log: quiet as never });
  assert.equal(summary.completed, 4);
  assert.deepEqual(refused, []);
  // Jobs run concurrently: find each delivery by its type.
  const placed = received.find((r) => r.body.type === "order.placed");
  const paid = received.find((r) => r.body.type === "order.paid");
  assert.equal(placed!.body.type, "order.placed");
  assert.deepEqual(placed!.body.data, { total: 5 });
  assert.equal(placed!.body.stream, "order-1");
  assert.equal(placed!.body.version, 1);
  assert.equal(paid!.body.type, "order.paid");
  assert.match(placed!.id, /^evt_crm_\d+$/);
  // Redeliveries carry the same id, so the receiver can drop them.
  assert.deepEqual(new Set(received.map((r) => r.id)).size, 2);
});

Deno.test("events webhooks: a wrong secret fails verification; an unknown key dead-letters, never unsigned", async () => {
  await using db = await freshDatabase();
  const receiver = new Webhook(SECRET);
  const outcomes: string[] = [];
  await using server = serve(async (req) => {
    const text = await req.text();
    try {
      receiver.verify(text, Object.fromEntries(req.headers));
      outcomes.push("verified");
      return new Response(null, { status: 204 });
    } catch {
      outcomes.push("refused");
      return new Response(null, { status: 400 });
    }
  });
  const make = (name: string, signingKey: string) =>
    defineWebhookSubscription({ name, url: `${server.url}/h`, signingKey });
  await appendEvents(db.sql, "order-9", [{ type: "t", data: {} }]);
  await runSubscriptions({
    sql: db.sql,
    subscriptions: [make("wrong", "other"), make("missing", "nope")],
    log: quiet as never,
  });
  const registry = jobRegistry([
    webhookDeliverJob({
      allowHosts: ["127.0.0.1"],
      signingKeys: { other: "whsec_" + btoa("another-secret-of-32-bytes-long!") },
    }),
  ]);
  await runWorker({ sql: db.sql, registry, log: quiet as never });
  assert.deepEqual(outcomes, ["refused"]);
  const dead = await db.sql`select reason from queue.dead_letters order by reason`;
  assert.deepEqual(dead.map((d) => d.reason), ["http_400", "unsigned"]);
  // Bad secrets are refused when the worker starts, not per job.
  assert.throws(
    () => webhookDeliverJob({ signingKeys: { k: "whsec_c2hvcnQ=" } }),
    /24\.\.64 bytes/,
  );
});

Deno.test("events webhooks: the signing secret comes from the environment (EVENTS_WEBHOOK_SECRET_<KEY>); the delivery continues the event's trace", async () => {
  await using db = await freshDatabase();
  const secret = "whsec_" +
    btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  const receiver = new Webhook(secret);
  const received: { body: WebhookEventBody; traceparent: string | null }[] = [];
  const refused: string[] = [];
  await using server = serve(async (req) => {
    const text = await req.text();
    try {
      receiver.verify(text, Object.fromEntries(req.headers));
    } catch (error) {
      refused.push(String(error));
      return new Response("bad signature", { status: 400 });
    }
    received.push({ body: JSON.parse(text), traceparent: req.headers.get("traceparent") });
    return new Response(null, { status: 204 });
  });
  const hook = defineWebhookSubscription({
    name: "crm-eu",
    url: `${server.url}/hooks`,
    signingKey: "crm-eu",
  });
  assert.equal(webhookSecretVariable("crm-eu"), "EVENTS_WEBHOOK_SECRET_CRM_EU");
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  await db.sql.begin(async (tx) => {
    await tx`select set_config('events.traceparent', ${`00-${traceId}-00f067aa0ba902b7-01`}, true)`;
    await appendEvents(tx, "order-7", [{ type: "order.placed", data: { total: 7 } }]);
  });
  await runSubscriptions({ sql: db.sql, subscriptions: [hook], log: quiet as never });

  // The real environment, as deployed (`supabase secrets set EVENTS_WEBHOOK_SECRET_CRM_EU=...`).
  const variable = webhookSecretVariable(hook.signingKey);
  assert.throws(() => webhookSigningKeys([hook]), (e: unknown) => {
    // Unset: a misconfiguration naming the variable, never an unsigned delivery.
    assert.ok(e instanceof EnvError);
    assert.match(e.message, /EVENTS_WEBHOOK_SECRET_CRM_EU/);
    return true;
  });
  Deno.env.set(variable, secret);
  let signingKeys: Record<string, string>;
  try {
    signingKeys = webhookSigningKeys([hook]);
  } finally {
    Deno.env.delete(variable);
  }
  assert.deepEqual(Object.keys(signingKeys), ["crm-eu"]);
  const registry = jobRegistry([webhookDeliverJob({ allowHosts: ["127.0.0.1"], signingKeys })]);
  const summary = await runWorker({ sql: db.sql, registry, log: quiet as never });
  assert.equal(summary.completed, 1);
  assert.deepEqual(refused, []);
  assert.equal(received.length, 1);
  assert.equal(received[0]!.body.type, "order.placed");
  assert.deepEqual(received[0]!.body.data, { total: 7 });
  // The delivery joined the trace the event was appended under.
  assert.equal(received[0]!.traceparent?.split("-")[1], traceId);
});

Deno.test("events webhooks: bad secret variables are refused by name, never echoing the value", () => {
  const hook = defineWebhookSubscription({
    name: "h",
    url: "https://example.com/h",
    signingKey: "k",
  });
  const other = defineSubscription({ name: "plain", handler: () => {} });
  // Subscriptions without a signing key need no secret.
  assert.deepEqual(webhookSigningKeys([other], () => undefined), {});
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["   ", false],
    ["whsec_", false],
    ["whsec_c2hvcnQ=", false], // 5 bytes
    ["whsec_%%%not-base64%%%", false],
    [btoa("a-test-secret-of-32-bytes-long!!"), false], // no whsec_ prefix
    ["whsec_" + btoa("x".repeat(65)), false],
    ["whsec_" + btoa("x".repeat(24)), true],
    [" whsec_" + btoa("x".repeat(64)) + "\n", true],
  ];
  for (const [value, ok] of cases) {
    const get = (name: string) => name === "EVENTS_WEBHOOK_SECRET_K" ? value : undefined;
    if (ok) {
      assert.equal(webhookSigningKeys([hook, other], get).k, value!.trim());
      continue;
    }
    assert.throws(() => webhookSigningKeys([hook, other], get), (e: unknown) => {
      assert.ok(e instanceof EnvError, String(e));
      assert.match(e.message, /EVENTS_WEBHOOK_SECRET_K must be set/);
      if (value && value.trim().length > 8) assert.ok(!e.message.includes(value.trim()));
      return true;
    }, JSON.stringify(value));
  }
  assert.throws(
    () => defineWebhookSubscription({ name: "h", url: "https://example.com", signingKey: "a b" }),
    /signingKey/,
  );
});
