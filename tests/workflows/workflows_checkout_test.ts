/**
 * The `order.checkout` example saga end to end: the api actions over HTTP with
 * real JWTs (start, idempotent restart, 422, users read only their own runs), the
 * queue-worker function driving it, and the saga's failure paths (declined card,
 * confirmation time-out, out of stock, a cancel while the charge is in flight)
 * releasing stock and refunding.
 */
import assert from "node:assert/strict";
import type postgres from "npm:postgres@3";
import {
  cancelWorkflow,
  defineFunction,
  orderCheckoutWorkflow,
  readEnv,
  startWorkflow,
  workflowStatus,
} from "../../supabase/functions/_shared/mod.ts";
import { apiSpec } from "../../supabase/functions/api/index.ts";
import { queueWorkerSpec } from "../../supabase/functions/queue-worker/spec.ts";
import { freshDatabase } from "../_harness/database.ts";
import { makeProject, signToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";
import { drainOnce, driveUntil, FINISHED, gate } from "./harness.ts";
import { paymentSink } from "./payment_sink.ts";

const stockOf = async (sql: postgres.Sql, sku: string) =>
  (await sql`select available from public.stock where sku = ${sku}`)[0]!.available as number;

Deno.test("checkout: api actions over HTTP and the queue-worker function run the saga", async () => {
  await using db = await freshDatabase();
  await db.sql`insert into public.stock values ('tee', 10)`;
  const sink = paymentSink(db.sql);
  await using _sink = sink.server;
  const project = await makeProject({ SUPABASE_DB_URL: db.url, CHECKOUT_PAYMENT_URL: sink.url });
  const env = readEnv((k) => project.env[k]);
  const api = defineFunction(apiSpec, { env });
  await using apiServer = serve(api.fetch);
  const worker = defineFunction(
    queueWorkerSpec({
      jobs: [],
      workflows: (sql) => [orderCheckoutWorkflow({ sql, paymentUrl: sink.url })],
    }),
    { env },
  );
  await using workerServer = serve(worker.fetch);
  await using _close = {
    [Symbol.asyncDispose]: async () => {
      await api.close();
      await worker.close();
    },
  };
  const alice = await signToken(project.es256, { sub: crypto.randomUUID() });
  const bob = await signToken(project.es256, { sub: crypto.randomUUID() });
  const call = async (token: string, action: string, payload: unknown) => {
    const res = await fetch(`${apiServer.url}/functions/v1/api`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      },
      body: JSON.stringify({ action, payload }),
    });
    return { status: res.status, body: await res.json() };
  };

  const start = await call(alice, "checkout.start", { sku: "tee", quantity: 2, orderKey: "o-1" });
  assert.equal(start.status, 200);
  const runId = start.body.data.runId as number;
  const again = await call(alice, "checkout.start", { sku: "tee", quantity: 2, orderKey: "o-1" });
  assert.equal(again.body.data.runId, runId, "a retried request returns the same run");
  const bad = await call(alice, "checkout.start", { sku: "", quantity: 0, orderKey: "o-2" });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.errors.map((e: { pointer: string }) => e.pointer).sort(), [
    "/payload/quantity",
    "/payload/sku",
  ]);

  // Drive through the queue-worker function itself until the run ends.
  const deadline = Date.now() + 60_000;
  while (true) {
    const res = await fetch(`${workerServer.url}/functions/v1/queue-worker`, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: project.cronSecret },
      body: JSON.stringify({ wait: true, budgetMs: 5_000 }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const s = await workflowStatus(db.sql, runId);
    if (FINISHED.includes(s!.status)) break;
    assert.ok(Date.now() < deadline, `run stuck: ${JSON.stringify(s)}`);
  }
  const mine = await call(alice, "checkout.status", { runId });
  assert.equal(mine.status, 200);
  assert.equal(mine.body.data.status, "completed");
  assert.deepEqual(mine.body.data.steps.map((s: { name: string }) => s.name), [
    "reserve",
    "charge",
    "payment.confirmed",
    "ship",
  ]);
  const theirs = await call(bob, "checkout.status", { runId });
  assert.equal(theirs.status, 404, "another user's run reads as not found");
  assert.equal(await stockOf(db.sql, "tee"), 8);
  assert.deepEqual([...sink.effects.charges.keys()], [`${runId}:charge`]);
  assert.deepEqual([...sink.effects.shipments.keys()], [`${runId}:ship`]);
  assert.equal(sink.effects.refunds.size, 0);
  const [run] = await db.sql`select traceparent from workflows.runs where id = ${runId}`;
  assert.match(run!.traceparent, /^00-4bf92f35/);
});

Deno.test("checkout: declined card, confirmation time-out and missing stock undo what was done", async () => {
  await using db = await freshDatabase();
  await db.sql`insert into public.stock values ('tee', 5)`;
  const declineOver = 50_000;
  const sink = paymentSink(db.sql, {
    plan: (path, _key, body) =>
      path === "charges" && (body.amountCents as number) > declineOver ? 402 : 200,
    confirm: (runId) => runId !== timeoutRun,
  });
  await using _sink = sink.server;
  const wf = orderCheckoutWorkflow({ sql: db.sql, paymentUrl: sink.url, confirmTimeoutMs: 50 });
  const input = (quantity: number, amountCents: number) => ({
    userId: null,
    sku: "tee",
    quantity,
    amountCents,
  });
  const declined = await startWorkflow(db.sql, wf, input(2, 99_000));
  let timeoutRun = -1;
  timeoutRun = await startWorkflow(db.sql, wf, input(1, 1_000));
  const noStock = await startWorkflow(db.sql, wf, input(50, 1_000));
  const [d, t, n] = await driveUntil(db.sql, [wf], [declined, timeoutRun, noStock]);
  assert.equal(d!.status, "compensated");
  assert.match(d!.error!, /charges refused \(402\)/);
  assert.equal(t!.status, "compensated");
  assert.match(t!.error!, /timed out/);
  assert.deepEqual([...sink.effects.refunds.keys()], [`${timeoutRun}:charge:refund`]);
  assert.equal(n!.status, "failed", "nothing was done, so nothing to undo");
  assert.match(n!.error!, /out of stock/);
  assert.equal(await stockOf(db.sql, "tee"), 5, "every reservation was released");
});

Deno.test("checkout: a cancel while the charge is in flight finishes the charge, then refunds it", async () => {
  await using db = await freshDatabase();
  await db.sql`insert into public.stock values ('tee', 5)`;
  const charged = gate();
  const release = gate();
  const requests: string[] = [];
  await using sink = serve(async (req) => {
    const path = new URL(req.url).pathname.slice(1);
    const key = req.headers.get("idempotency-key") ?? "";
    await req.body?.cancel();
    requests.push(`${path} ${key}`);
    if (requests.length === 1) {
      // The partner takes the charge, but its answer is held until the worker has been
      // cancelled and has given up on this request.
      charged.open();
      await release.opened;
    }
    return Response.json({ id: `${path}_${key}` });
  });
  const wf = orderCheckoutWorkflow({ sql: db.sql, paymentUrl: sink.url + "/" });
  const id = await startWorkflow(db.sql, wf, {
    userId: null,
    sku: "tee",
    quantity: 2,
    amountCents: 1_000,
  });
  const worker = drainOnce(db.sql, [wf], { cancelPollMs: 10 });
  await charged.opened;
  assert.equal(await stockOf(db.sql, "tee"), 3);
  assert.equal(await cancelWorkflow(db.sql, id), true);
  await worker;
  release.open();
  const [s] = await driveUntil(db.sql, [wf], [id]);
  assert.equal(s!.status, "cancelled");
  // The aborted charge was finished with the same key (one charge at the partner), then refunded.
  assert.deepEqual(requests, [
    `charges ${id}:charge`,
    `charges ${id}:charge`,
    `refunds ${id}:charge:refund`,
  ]);
  assert.deepEqual(s!.steps.map((x) => [x.name, x.status, x.compensation]), [
    ["reserve", "completed", "compensated"],
    ["charge", "completed", "compensated"],
  ]);
  assert.equal(await stockOf(db.sql, "tee"), 5, "the reservation was released");
});
