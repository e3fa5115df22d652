/**
 * Breaker state shared across isolates: two real processes on one Postgres,
 * the staleness bound measured on the reader's injected clock, recovery
 * propagation, and a store that is down.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import {
  type BreakerState,
  CircuitBreaker,
  CircuitOpenError,
  postgresBreakerStore,
  SharedBreakerState,
} from "../../supabase/functions/_shared/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";

const CHILD = new URL("./breaker_child.ts", import.meta.url).pathname;

async function otherIsolate(url: string, key: string, mode: "trip" | "recover") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CHILD, url, key, mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines.at(-1)!) as { openUntil: number };
}

const ok = () => Promise.resolve("ok");

Deno.test("shared state: a trip in another process opens this breaker within one staleness period", async () => {
  await using db = await freshDatabase();
  let t = Date.now();
  const now = () => t;
  const shared = new SharedBreakerState(postgresBreakerStore(db.sql), { now, stalenessMs: 1000 });
  const breaker = new CircuitBreaker({ key: "payments-api", openMs: 30_000 }, { now });
  shared.attach(breaker);

  assert.equal(await breaker.execute(ok), "ok"); // first call reads the (empty) store
  await shared.flush();
  const { openUntil } = await otherIsolate(db.url, "payments-api", "trip");

  t += 999; // within the staleness period: no read, local state decides
  assert.equal(await breaker.execute(ok), "ok");
  await shared.flush();
  assert.equal((breaker.state as BreakerState).kind, "closed");

  t += 1; // one staleness period after the last read
  assert.equal(await breaker.execute(ok), "ok"); // decides locally first; the read runs behind it
  await shared.flush();
  const refused = await breaker.execute(ok).catch((e) => e);
  assert.ok(refused instanceof CircuitOpenError);
  const s = breaker.state as BreakerState;
  assert.deepEqual(
    s.kind === "open" ? { source: s.source, openUntil: Math.round(s.openUntil) } : s,
    { source: "shared", openUntil },
  );

  // The other isolate then sees its dependency recover: this one follows.
  await otherIsolate(db.url, "payments-api", "recover");
  t += 1000;
  await breaker.execute(ok).catch(() => {}); // triggers the read
  await shared.flush();
  assert.equal((breaker.state as BreakerState).kind, "closed");
  assert.equal(await breaker.execute(ok), "ok");
});

Deno.test("shared state: local trips are published, own publications ignored, reads bounded", async () => {
  await using db = await freshDatabase();
  let t = Date.now();
  const now = () => t;
  let reads = 0;
  const store = postgresBreakerStore(db.sql);
  const counting = { ...store, read: (k: string) => (reads++, store.read(k)) };
  const shared = new SharedBreakerState(counting, { now, isolateId: "me" });
  const breaker = new CircuitBreaker({
    key: "k",
    policies: [{ kind: "consecutive", failures: 2 }],
  }, { now });
  shared.attach(breaker);
  for (let i = 0; i < 50; i++) await breaker.execute(ok);
  assert.equal(reads, 1); // 50 calls in the same instant: one read
  await breaker.execute(() => Promise.reject(new Error("x"))).catch(() => {});
  await breaker.execute(() => Promise.reject(new Error("x"))).catch(() => {});
  await shared.flush();
  const [row] = await db.sql`select * from resilience.breaker_read(array['k'])`;
  assert.equal(row!.state, "open");
  assert.equal(row!.updated_by, "me");
  breaker.forceClose(); // an operator reset; not a probe recovery, so not published
  t += 1000;
  await breaker.execute(ok);
  await shared.flush();
  assert.equal((breaker.state as BreakerState).kind, "closed"); // its own "open" record is not adopted back
});

Deno.test("shared state: store down -> the breaker keeps working locally and warns once", async () => {
  const sql = postgres(`postgresql://postgres:postgres@127.0.0.1:${freePort()}/postgres`, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  try {
    let t = Date.now();
    const now = () => t;
    const warnings: string[] = [];
    const shared = new SharedBreakerState(postgresBreakerStore(sql), {
      now,
      log: { warn: (m) => void warnings.push(m) },
    });
    const breaker = new CircuitBreaker({
      key: "k",
      policies: [{ kind: "consecutive", failures: 1 }],
      openMs: 1000,
    }, { now });
    shared.attach(breaker);
    for (let i = 0; i < 3; i++) {
      assert.equal(await breaker.execute(ok), "ok");
      t += 1000;
    }
    await breaker.execute(() => Promise.reject(new Error("x"))).catch(() => {});
    assert.equal((breaker.state as BreakerState).kind, "open"); // local trip, publication fails quietly
    t += 1000;
    assert.equal(await breaker.execute(ok), "ok"); // local recovery
    await shared.flush();
    assert.equal((breaker.state as BreakerState).kind, "closed");
    assert.deepEqual(warnings, ["breaker store unreachable; using local breaker state"]);
  } finally {
    await sql.end();
  }
});
