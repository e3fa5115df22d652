/**
 * Chaos: 1,000 `order.checkout` runs, 4 worker processes, each SIGKILLed once
 * (and replaced) at a point chosen by progress: when the payment sink has taken
 * the 200th, 400th, 600th and 800th charge, it holds that request unanswered and
 * names the worker that sent it, so every kill lands between a charge's side
 * effect and the recording of its result. Planned partner failures by run id:
 * declined cards (permanent), flaky charges (transient), shipments that always
 * fail (compensated), and refunds that fail for good (compensation_failed).
 *
 * At the end: every run ended as planned and none is left running; no step was
 * completed twice; every compensation happened at most once per completed step;
 * the sink, deduplicating by idempotency key, saw exactly one charge per
 * completed charge step and one refund per compensated one.
 */
import assert from "node:assert/strict";
import { serve } from "../_harness/server.ts";
import { freshDatabase } from "../_harness/database.ts";
import { signalWorkflow } from "../../supabase/functions/_shared/mod.ts";

/** WF_CHAOS_RUNS / WF_CHAOS_DEADLINE_MS shrink a run for diagnosis; the suite uses the defaults. */
const RUNS = Number(Deno.env.get("WF_CHAOS_RUNS") ?? 1_000);
const WORKERS = 4;
const KILL_AT_CHARGE = [0.2, 0.4, 0.6, 0.8].map((f) => Math.round(f * RUNS));
/** Only ever fails the test (a hung run must end); it never decides what happens. */
const DEADLINE_MS = Number(Deno.env.get("WF_CHAOS_DEADLINE_MS") ?? 300_000);

/** What the plan makes of run `id`. */
function planned(id: number): "completed" | "compensated" | "compensation_failed" {
  if (id % 20 === 9) return "compensation_failed"; // ship refused, refund refused
  if (id % 10 === 3 || id % 10 === 7) return "compensated"; // declined / shipping down
  return "completed";
}

Deno.test("workflow chaos: 1,000 checkouts, 4 workers killed mid-step, planned failures", async () => {
  await using db = await freshDatabase();
  await db.sql`insert into public.stock values ('tee', 1000000)`;

  const tries = new Map<string, number>();
  const effects = { charges: new Map<string, number>(), refunds: new Map<string, number>() };
  const kills: { resolve: (pid: number) => void }[] = [];
  const held: ((r: Response) => void)[] = [];
  const killSignals = KILL_AT_CHARGE.map(() => {
    let resolve!: (pid: number) => void;
    const p = new Promise<number>((r) => resolve = r);
    kills.push({ resolve });
    return p;
  });
  const plan = (path: string, id: number, attempt: number): number => {
    if (path === "charges" && id % 10 === 3) return 402;
    if (path === "charges" && id % 10 === 5 && attempt <= 2) return 503;
    if (path === "shipments" && id % 20 === 9) return 400;
    if (path === "shipments" && id % 10 === 7) return 503;
    if (path === "refunds" && id % 20 === 9) return 400;
    return 200;
  };
  await using sink = serve(async (req) => {
    const path = new URL(req.url).pathname.slice(1);
    const key = req.headers.get("idempotency-key") ?? "";
    await req.body?.cancel();
    const id = Number(key.split(":")[0]);
    const attempt = (tries.get(`${path}:${key}`) ?? 0) + 1;
    tries.set(`${path}:${key}`, attempt);
    const status = plan(path, id, attempt);
    if (status !== 200) return new Response("planned", { status });
    if (path === "shipments") return Response.json({ id: `ship_${key}` });
    const map = effects[path as "charges" | "refunds"];
    const first = !map.has(key);
    map.set(key, (map.get(key) ?? 0) + 1);
    if (path === "charges" && first) {
      // The count when this charge was taken (other requests add to it during the await).
      const k = KILL_AT_CHARGE.indexOf(map.size);
      await signalWorkflow(db.sql, id, "payment.confirmed", { chargeId: `ch_${key}` });
      if (k >= 0) {
        // The charge is made; its worker never hears back: the test kills it now.
        kills[k]!.resolve(Number(req.headers.get("x-worker-pid")));
        return await new Promise<Response>((r) => held.push(r));
      }
    }
    return Response.json({ id: `${path}_${key}` });
  });

  const script = new URL("./chaos_worker.ts", import.meta.url).pathname;
  const children = new Map<number, Deno.ChildProcess>();
  const spawn = () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, db.url, sink.url + "/"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.set(child.pid, child);
  };
  const started = Date.now();
  const deadline = started + DEADLINE_MS;
  const ids = (await db.sql`
    select workflows.start('order.checkout', jsonb_build_object('userId', null, 'sku', 'tee',
      'quantity', 1, 'amountCents', 1000), 'chaos-' || g) as id
    from generate_series(1, ${RUNS}) g`).map((r) => Number(r.id));
  assert.equal(new Set(ids).size, RUNS);
  try {
    for (let i = 0; i < WORKERS; i++) spawn();
    for (const killed of killSignals) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const pid = await Promise.race([
        killed,
        new Promise<number>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `no kill point reached: ${effects.charges.size} charges, ${tries.size} keys`,
                ),
              ),
            deadline - Date.now(),
          );
        }),
      ]).finally(() => clearTimeout(timer));
      const victim = children.get(pid);
      assert.ok(victim, `pid ${pid} is one of our workers`);
      victim.kill("SIGKILL");
      await victim.status;
      children.delete(pid);
      // Its leases would run out; end them now, as expiry would.
      await db.sql`update queue.jobs set lease_until = now() where locked_by = ${`w-${pid}`}`;
      spawn();
    }
    while (true) {
      const [{ n }] = await db.sql`select count(*)::int as n from workflows.runs
        where status not in ('completed', 'compensated', 'compensation_failed')` as [{ n: number }];
      if (n === 0) break;
      assert.ok(Date.now() < deadline, `${n} runs not finished`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const child of children.values()) {
      child.kill("SIGKILL");
      await child.status;
    }
    for (const r of held) r(new Response("gone", { status: 503 }));
  }
  const seconds = (Date.now() - started) / 1000;

  const runs = await db.sql`select id, status, completions,
      (select count(*)::int from workflows.steps s where s.run_id = r.id and s.status = 'completed')
        as completed_steps
    from workflows.runs r order by id`;
  const byStatus: Record<string, number> = {};
  for (const r of runs) {
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    assert.equal(r.status, planned(Number(r.id)), `run ${r.id}`);
    // Each completion took one number: no step was completed (or attempted to be) twice.
    assert.equal(r.completions, r.completed_steps, `run ${r.id} completions`);
  }
  assert.equal(runs.length, RUNS);
  const [{ jobs }] = await db.sql`select count(*)::int as jobs from queue.jobs`;
  assert.equal(jobs, 0, "nothing left running");

  const charged = await db.sql`select run_id, compensation_status from workflows.steps
    where name = 'charge' and status = 'completed'`;
  const chargeKeys = new Set(charged.map((r) => `${r.run_id}:charge`));
  assert.deepEqual(
    new Set(effects.charges.keys()),
    chargeKeys,
    "one charge per completed charge step",
  );
  const refunded = new Set(
    charged.filter((r) => r.compensation_status === "compensated").map((r) =>
      `${r.run_id}:charge:refund`
    ),
  );
  assert.deepEqual(new Set(effects.refunds.keys()), refunded, "one refund per compensated charge");
  const [stock] = await db.sql`select
      (select available from public.stock where sku = 'tee') as available,
      (select count(*)::int from public.stock_reservations where not released) as held,
      (select count(*)::int from workflows.steps where name = 'reserve'
        and compensation_status = 'compensated') as released_steps,
      (select count(*)::int from public.stock_reservations where released) as released_rows`;
  assert.equal(stock!.released_steps, stock!.released_rows, "each release happened once");
  assert.equal(stock!.available, 1_000_000 - stock!.held);
  const duplicates = [...effects.charges.values()].filter((n) => n > 1).length;
  assert.ok(duplicates >= 4, "each killed worker's charge was sent again and deduplicated");
  console.log(JSON.stringify({
    runs: RUNS,
    seconds,
    byStatus,
    kills: KILL_AT_CHARGE.length,
    charges: effects.charges.size,
    chargeRequestsDeduplicated: duplicates,
    refunds: effects.refunds.size,
    released: stock!.released_rows,
  }));
});
