/**
 * `deno task bench:workflows`: this starter's workflow engine (docs/workflows.md)
 * against DBOS Transact (@dbos-inc/dbos-sdk, under Node, installed by the bench
 * into bench/node), on one embedded Postgres.
 *
 * The workload: a 3-step no-op workflow (each step recorded; a counter hit in
 * every step), N runs. Each measurement gets a fresh database cloned from a
 * per-engine template.
 * - throughput, runs/s and steps/s: N runs started beforehand (ours: one
 *   `workflows.start` per row in one statement; DBOS: DBOSClient.enqueue onto
 *   its queue), timed from the first step to the N x 3-th across the worker:
 *   - ours as shipped: `runWorker` + `workflowRunJob`, exactly what
 *     `queue-worker` runs (concurrency 10, adaptive batch, pool 3);
 *   - ours tuned: --ours-tuned=CONCURRENCYxPOOL;
 *   - DBOS queue: its workflow queue with --dbos-queue=WORKER_CONCURRENCYxPOLL_MSxPOOL
 *     (the documented way to run many workflows with flow control; worker
 *     concurrency, minPollingIntervalMs and systemDatabasePoolSize are its knobs);
 *   - DBOS direct: --dbos-direct=LANESxPOOL direct invocations of the workflow
 *     function (no queue hop: the process that starts a workflow runs it), timed
 *     the same way; this includes writing each run's start, which ours does
 *     before the clock.
 *   DBOS at its best is the faster of its two rows (median steps/s).
 * - start -> first step: --latency single runs, one at a time, each timed from
 *   the start call to its first step, with a worker running: ours, the worker in
 *   listen mode (LISTEN/NOTIFY) and `startWorkflow`; DBOS queue,
 *   `DBOS.startWorkflow(wf, {queueName})` with the queue's polling interval at
 *   --dbos-queue's; DBOS direct, `DBOS.startWorkflow(wf)` (in-process).
 * If DBOS cannot run here (no real Node, npm, or its launch fails), the bench
 * says why and compares with a hand-written baseline instead: one job per step
 * on our own queue (each step's job enqueues the next).
 * Rounds interleave the engines (the order rotates); the tables print medians,
 * min-max, n, and ratios (ours / DBOS). Nothing here asserts a timing.
 *
 * Flags: --n=2000 --rounds=3 --latency=200 (0: skip) --ours-tuned=50x10
 *   --dbos-queue=0x10x10 (worker concurrency 0 = no limit) --dbos-direct=20x10
 *   --peers=ours,dbos --baseline (add the baseline row although DBOS runs) --durable (fsync on)
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { applyBootstrap, applyMigrations } from "../local/database/mod.ts";
import { withDatabase } from "../tests/_harness/database.ts";
import { flag, num, words } from "./lib/args.ts";
import { NODE } from "./required_tools.ts";
import { ensureNodePeers, NODE_DIR, nodeVersion, peerVersion } from "./lib/node_peers.ts";
import { BenchCluster } from "./lib/cluster.ts";
import { ProtocolChild, until } from "./lib/proc.ts";
import { table, type Target, targetsTable } from "./lib/report.ts";
import {
  compact,
  fmtRatio,
  fmtSummary,
  pairedRange,
  quantile,
  ratio,
  summarize,
} from "./lib/stats.ts";

const N = num("n", 2_000);
const ROUNDS = num("rounds", 3);
const LATENCY = num("latency", 200);
const PEERS = words("peers");
const DURABLE = flag("durable", false);
/** Also measure the hand-written baseline when DBOS runs (it is the fallback otherwise). */
const BASELINE = flag("baseline", false);
const STEPS = 3;

function triple(name: string, fallback: number[]): number[] {
  const v = Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  if (v === undefined) return fallback;
  const parts = v.split("x").map(Number);
  if (parts.length !== fallback.length || parts.some((x) => !Number.isFinite(x))) {
    throw new Error(`--${name}: expected ${fallback.join("x")}-shaped numbers, got ${v}`);
  }
  return parts;
}
const [TUNED_C, TUNED_POOL] = triple("ours-tuned", [50, 10]) as [number, number];
const [DQ_WC, DQ_POLL, DQ_POOL] = triple("dbos-queue", [0, 10, 10]) as [number, number, number];
const [DD_LANES, DD_POOL] = triple("dbos-direct", [20, 10]) as [number, number];
const wantPeer = (p: string) => PEERS.length === 0 || PEERS.includes(p);

type Engine = "ours" | "dbos" | "baseline";
interface Measurement {
  id: string;
  engine: Engine;
  label: string;
  describe: string;
  settings: Record<string, unknown>;
  /** How runs get started before the clock (ours, DBOS queue), or during it (DBOS direct). */
  fill: "ours" | "dbos" | "baseline" | null;
}

const deno = Deno.execPath();
const ROOT = join(NODE_DIR, "..", "..");

function child(engine: Engine, name: string, config: Record<string, unknown>): ProtocolChild {
  const arg = JSON.stringify(config);
  if (engine === "dbos") {
    return new ProtocolChild(name, "node", ["dbos.mjs", arg], { cwd: NODE_DIR });
  }
  const script = engine === "ours" ? "workflows_ours.ts" : "workflows_baseline.ts";
  return new ProtocolChild(name, deno, ["run", "-A", "--quiet", `bench/workers/${script}`, arg], {
    cwd: ROOT,
  });
}

async function runToEnd(engine: Engine, name: string, config: Record<string, unknown>) {
  const c = child(engine, name, config);
  await c.done;
  if (c.error) throw new Error(`${name}: ${c.error}`);
  return c.result ?? {};
}

/** Why DBOS cannot run here, or null. */
async function dbosBlocker(): Promise<string | null> {
  const node = await new Deno.Command("node", {
    args: ["-p", "process.versions.deno ? '' : process.version"],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => null);
  const v = node?.success ? new TextDecoder().decode(node.stdout).trim() : "";
  if (!v.startsWith("v")) {
    return `\`node\` (real Node.js, not Deno's shim) is not on PATH (install: ${NODE.install})`;
  }
  try {
    await ensureNodePeers();
    await peerVersion("@dbos-inc/dbos-sdk");
  } catch (e) {
    return `installing @dbos-inc/dbos-sdk failed: ${e}`;
  }
  return null;
}

function plan(dbos: boolean): Measurement[] {
  const out: Measurement[] = [];
  if (wantPeer("ours")) {
    out.push({
      id: "ours shipped",
      engine: "ours",
      label: "ours, as shipped (queue-worker)",
      describe: "runWorker + workflowRunJob as queue-worker calls them: concurrency 10, " +
        "adaptive batch (20 up to 500), pool 3 (createDatabase), budget 50 s (re-invoked)",
      settings: { shipped: true },
      fill: "ours",
    }, {
      id: "ours tuned",
      engine: "ours",
      label: "ours, tuned",
      describe: `same code path, concurrency ${TUNED_C}, pool ${TUNED_POOL}`,
      settings: { concurrency: TUNED_C, pool: TUNED_POOL },
      fill: "ours",
    });
  }
  if (dbos && wantPeer("dbos")) {
    out.push({
      id: "dbos queue",
      engine: "dbos",
      label: "DBOS, workflow queue",
      describe: `WorkflowQueue workerConcurrency ${DQ_WC || "unlimited"}, ` +
        `minPollingIntervalMs ${DQ_POLL} (default 1000), systemDatabasePoolSize ${DQ_POOL}; ` +
        "runs enqueued beforehand with DBOSClient.enqueue",
      settings: {
        workerConcurrency: DQ_WC > 0 ? DQ_WC : undefined,
        pollMs: DQ_POLL,
        poolSize: DQ_POOL,
      },
      fill: "dbos",
    }, {
      id: "dbos direct",
      engine: "dbos",
      label: "DBOS, direct invocation",
      describe: `${DD_LANES} workflow calls in flight, systemDatabasePoolSize ${DD_POOL}; ` +
        "each run's start is written inside the timed window",
      settings: { lanes: DD_LANES, poolSize: DD_POOL },
      fill: null,
    });
  }
  if ((!dbos && wantPeer("dbos")) || BASELINE) {
    out.push({
      id: "baseline",
      engine: "baseline",
      label: "baseline: one job per step on our queue",
      describe: "each step is a queue job that enqueues the next; runWorker concurrency 10, " +
        "pool 3 (the shipped worker settings)",
      settings: {},
      fill: "baseline",
    });
  }
  return out;
}

const samples = new Map<string, number[]>();
const record = (id: string, x: number) => samples.set(id, [...(samples.get(id) ?? []), x]);
const s = (id: string) => summarize(samples.get(id) ?? []);
const has = (id: string) => (samples.get(id)?.length ?? 0) > 0;

async function buildTemplates(
  cluster: BenchCluster,
  dbos: boolean,
): Promise<Record<string, string>> {
  await cluster.admin.unsafe("create database bench_tpl_ours");
  const sql = postgres(withDatabase(cluster.url, "bench_tpl_ours"), {
    max: 1,
    onnotice: () => {},
  });
  try {
    await applyBootstrap(sql);
    await applyMigrations(sql);
  } finally {
    await sql.end();
  }
  if (!dbos) return { ours: "bench_tpl_ours", baseline: "bench_tpl_ours" };
  await cluster.admin.unsafe("create database bench_tpl_dbos");
  await runToEnd("dbos", "dbos setup", {
    url: withDatabase(cluster.url, "bench_tpl_dbos"),
    mode: "setup",
  });
  return { ours: "bench_tpl_ours", baseline: "bench_tpl_ours", dbos: "bench_tpl_dbos" };
}

/** Steps/s of one measurement (first step to the last). */
async function measure(cluster: BenchCluster, tpl: Record<string, string>, m: Measurement) {
  const db = await cluster.createFrom(tpl[m.engine]!);
  try {
    if (m.fill === "ours" || m.fill === "baseline") {
      await runToEnd(m.engine, `${m.id} fill`, { url: db.url, mode: "fill", n: N });
    } else if (m.fill === "dbos") {
      await runToEnd("dbos", `${m.id} fill`, {
        url: db.url,
        mode: "enqueue",
        n: N,
        settings: { lanes: 10 },
      });
    }
    const mode = m.engine === "dbos" ? (m.fill === "dbos" ? "queue" : "direct") : "drain";
    const c = child(m.engine, m.id, { url: db.url, mode, n: N, settings: m.settings });
    try {
      await until([c], () => c.ready, 60_000, `${m.id} ready`);
      await c.send("go");
      await until([c], () => c.count >= N * STEPS, Math.max(180_000, N * 60), `${m.id} steps`);
      await c.send("stop");
      await until([c], () => c.result !== null, 30_000, `${m.id} result`);
      const r = c.result as { first: number; last: number; count: number };
      if (r.count !== N * STEPS) {
        console.log(`  note: ${m.id} ran ${r.count} step calls for ${N * STEPS} steps`);
      }
      return ((N * STEPS) / (r.last - r.first)) * 1000;
    } finally {
      await c.close();
    }
  } finally {
    await cluster.drop(db.name);
  }
}

async function latency(
  cluster: BenchCluster,
  tpl: Record<string, string>,
  engine: Engine,
  mode: string,
) {
  const db = await cluster.createFrom(tpl[engine]!);
  try {
    const settings = engine === "dbos" ? { pollMs: DQ_POLL, poolSize: DQ_POOL } : {};
    const r = await runToEnd(engine, `latency ${mode}`, {
      url: db.url,
      mode,
      n: LATENCY,
      settings,
    });
    return r.samples as number[];
  } finally {
    await cluster.drop(db.name);
  }
}

const loadavg = async () =>
  (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");

function report(ms: Measurement[], lat: Record<string, number[]>, dbos: boolean) {
  console.log("\nSettings");
  table(["row", "settings"], ms.map((m) => [m.label, m.describe]));
  // The targets compare with DBOS at its best; with the baseline only when DBOS cannot run.
  const peers = ms.filter((m) => m.engine === (dbos ? "dbos" : "baseline") && has(m.id));
  const best = peers.reduce<Measurement | null>(
    (b, m) => (b === null || s(m.id).median > s(b.id).median ? m : b),
    null,
  );
  console.log(`\nThroughput (${N} runs of 3 no-op steps; first step to last; per second)`);
  table(
    ["engine", "steps/s", "runs/s", "ours shipped / this", "ours tuned / this"],
    ms.filter((m) => has(m.id)).map((m) => {
      const x = s(m.id);
      const vs = (o: string) => m.engine === "ours" || !has(o) ? "-" : fmtRatio(ratio(s(o), x));
      return [
        m.label,
        fmtSummary(x),
        compact(x.median / STEPS),
        vs("ours shipped"),
        vs("ours tuned"),
      ];
    }),
  );
  const latRows = Object.entries(lat).filter(([, v]) => v.length > 0);
  if (latRows.length) {
    console.log(`\nStart -> first step, worker running (${LATENCY} single runs each; ms)`);
    table(
      ["engine", "p50", "p99", "max"],
      latRows.map(([k, v]) => [
        k,
        quantile(v, 0.5).toFixed(2),
        quantile(v, 0.99).toFixed(2),
        Math.max(...v).toFixed(2),
      ]),
    );
  }
  const targets: Target[] = [];
  const name = best ? best.label : dbos ? "DBOS" : "baseline";
  for (const ours of ["ours shipped", "ours tuned"]) {
    targets.push({
      what: `steps/s, ${ours} / ${name}`,
      ratio: best && has(ours) ? ratio(s(ours), s(best.id)) : NaN,
      range: best && has(ours)
        ? pairedRange(samples.get(ours) ?? [], samples.get(best.id) ?? [])
        : undefined,
      op: ">=",
      bound: 1.5,
    });
  }
  const oursLat = lat["ours (listen-mode worker)"] ?? [];
  targets.push({
    what: "start -> first step p99, ours",
    ratio: oursLat.length ? quantile(oursLat, 0.99) : NaN,
    op: "<",
    bound: 50,
    unit: "ms",
  });
  targetsTable("Targets (issue 11)", targets);
}

async function main() {
  // No Node, npm or DBOS is not an exit: the bench says why and falls back to the baseline.
  const blocker = wantPeer("dbos") ? await dbosBlocker() : null;
  const dbos = blocker === null && wantPeer("dbos");
  if (blocker) {
    console.log(`DBOS cannot run here: ${blocker}.`);
    console.log("Comparing with the hand-written baseline instead: one job per step on our queue.");
  }
  const cluster = await BenchCluster.start("workflows", DURABLE);
  try {
    const v = await cluster.version();
    console.log(
      `bench:workflows  N=${N} runs x ${STEPS} steps, ${ROUNDS} rounds, interleaved; ` +
        `Postgres ${v} (${DURABLE ? "fsync on" : "fsync off, synchronous_commit off"}); ` +
        `deno ${Deno.version.deno}` +
        (dbos
          ? `, node ${await nodeVersion()}, @dbos-inc/dbos-sdk ${await peerVersion(
            "@dbos-inc/dbos-sdk",
          )}`
          : "") +
        `; load ${await loadavg()}`,
    );
    const tpl = await buildTemplates(cluster, dbos);
    const ms = plan(dbos);
    for (let r = 0; r < ROUNDS; r++) {
      const order = ms.map((_, i) => ms[(i + r) % ms.length]!);
      for (const m of order) {
        const x = await measure(cluster, tpl, m);
        record(m.id, x);
        console.log(
          `round ${r + 1}/${ROUNDS}  ${m.id.padEnd(14)} ${compact(x)} steps/s ` +
            `(${compact(x / STEPS)} runs/s)`,
        );
      }
    }
    const lat: Record<string, number[]> = {};
    if (LATENCY > 0) {
      if (wantPeer("ours")) {
        lat["ours (listen-mode worker)"] = await latency(cluster, tpl, "ours", "latency");
      }
      if (dbos) {
        lat[`DBOS queue (polling ${DQ_POLL} ms)`] = await latency(
          cluster,
          tpl,
          "dbos",
          "latency-queue",
        );
        lat["DBOS direct (in-process start)"] = await latency(
          cluster,
          tpl,
          "dbos",
          "latency-direct",
        );
      }
    }
    report(ms, lat, dbos);
    console.log(`\nload at the end: ${await loadavg()} (2 cores; absolute numbers drift)`);
  } finally {
    await cluster.close();
  }
}

await main();
