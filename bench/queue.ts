/**
 * `deno task bench:queue`: this project's queue against graphile-worker and
 * pg-boss, each in its own runtime (ours under Deno as deployed; the others under
 * Node, installed by the bench into bench/node), on one embedded Postgres.
 *
 * Measurements (each on a fresh database cloned from a per-peer template):
 * - enqueue, batched: N no-op jobs through each library's batch API (ours
 *   `enqueueMany`, graphile-worker `addJobs` = `add_jobs`, pg-boss `insert`);
 * - drain: N queued no-op jobs, timed from the first handler call to the N-th
 *   across all worker processes (library start-up excluded): ours as shipped
 *   (`queue-worker`'s runWorker call), ours and the peers at equal settings, and
 *   each at its best (graphile-worker: its documented performance preset);
 * - the in-database limit: the same claim + complete work (queue.claim,
 *   queue.complete, a commit per batch) in one plpgsql loop, timed server-side;
 * - a scale curve: 1, 2, 4, 8 worker processes on the same queue;
 * - enqueue -> handler start latency with a listening worker (ours).
 * Every measurement runs once per round, rounds interleave the peers (the order
 * rotates each round), and the tables print the median, min-max and n of each
 * and ratios of medians. Nothing here asserts a timing.
 *
 * Flags: --n=20000 --rounds=3 --concurrency=10 --batch=100 (equal settings)
 *   --ours-best-batch=500 --limit-batch=500 --chunk=5000 --scale=1,2,4,8
 *   --scale-peers=ours,graphile --pgboss-best=1000x2 --latency=300 (0: skip)
 *   --only=enqueue,drain,limit,scale (default: all) --peers=ours,graphile,pgboss
 *   (default: all) --durable (fsync on)
 */
import { join } from "node:path";
import postgres from "npm:postgres@3";
import { applyBootstrap, applyMigrations } from "../local/database/mod.ts";
import { withDatabase } from "../tests/_harness/database.ts";
import { flag, num, nums, words } from "./lib/args.ts";
import { NPM, requireRealNode, requireTools } from "./required_tools.ts";
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
  type Summary,
} from "./lib/stats.ts";
import { IN_DB_LIMIT_SQL, runInDbLimit } from "./lib/queue_limit.ts";

const N = num("n", 20_000);
const ROUNDS = num("rounds", 3);
const C = num("concurrency", 10);
const B = num("batch", 100);
const OURS_BEST_BATCH = num("ours-best-batch", 500);
const LIMIT_BATCH = num("limit-batch", 500);
const CHUNK = num("chunk", 5_000);
const SCALE = nums("scale", [1, 2, 4, 8]);
const SCALE_PEERS = words("scale-peers").length ? words("scale-peers") : ["ours", "graphile"];
const [PGBOSS_BEST_BATCH, PGBOSS_BEST_WORKERS] = (
  Deno.args.find((a) => a.startsWith("--pgboss-best="))?.split("=")[1] ?? "1000x2"
).split("x").map(Number) as [number, number];
const LATENCY = num("latency", 300);
const ONLY = words("only");
const PEERS = words("peers");
const DURABLE = flag("durable", false);
const want = (group: string) => ONLY.length === 0 || ONLY.includes(group);
// The peers run under Node; say so before anything starts, not from deep in a round.
if (PEERS.length === 0 || PEERS.some((p) => p !== "ours")) {
  await requireTools("bench:queue", [NPM]);
  await requireRealNode("bench:queue");
}

type Peer = "ours" | "graphile" | "pgboss";
type Kind = "enqueue" | "drain" | "limit";

interface Measurement {
  id: string;
  label: string;
  peer: Peer;
  kind: Kind;
  /** Worker processes (drain). */
  workers: number;
  settings: Record<string, unknown>;
  /** Human-readable settings for the report. */
  describe: string;
}

const deno = Deno.execPath();
const GRAPHILE_DOC_PRESET = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueueSize: 500,
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
  preparedStatements: true,
};

const drainSettings: Record<string, Omit<Measurement, "id" | "kind" | "workers">> = {
  "ours shipped": {
    label: "ours, as shipped (queue-worker)",
    peer: "ours",
    settings: { shipped: true },
    describe: "runWorker as queue-worker calls it: concurrency 10, adaptive batch " +
      "(2 x 10 = 20, doubling while claims come back full, up to 500), pool 3 (createDatabase), " +
      "acks piggybacked on the next claim, claims of 100+ split in two concurrent halves " +
      "while deep",
  },
  "ours equal": {
    label: "ours, equal settings",
    peer: "ours",
    settings: { concurrency: C, batchSize: B },
    describe:
      `concurrency ${C}, batch ${B}, pool 3 (claims of 100+ split in two halves while deep)`,
  },
  "ours best": {
    label: "ours, best batch",
    peer: "ours",
    settings: { concurrency: C, batchSize: OURS_BEST_BATCH },
    describe: `concurrency ${C}, batch ${OURS_BEST_BATCH}, pool 3 (split in two halves while deep)`,
  },
  "graphile equal": {
    label: "graphile-worker, equal settings",
    peer: "graphile",
    settings: {
      concurrentJobs: C,
      maxPoolSize: 10,
      localQueueSize: B,
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      preparedStatements: true,
    },
    describe: `concurrentJobs ${C}, localQueue ${B}, complete/failJobBatchDelay 0, ` +
      "maxPoolSize 10 (default), preparedStatements on",
  },
  "graphile best": {
    label: "graphile-worker, at its best",
    peer: "graphile",
    settings: GRAPHILE_DOC_PRESET,
    describe: "its documented performance preset: concurrentJobs 24, maxPoolSize 25, " +
      "localQueue 500, complete/failJobBatchDelay 0, preparedStatements on",
  },
  "pgboss equal": {
    label: "pg-boss, equal settings",
    peer: "pgboss",
    settings: { localConcurrency: C, batchSize: Math.max(1, Math.round(B / C)), max: 10 },
    describe: `localConcurrency ${C} x batchSize ${
      Math.max(1, Math.round(B / C))
    } (${B} in flight), burstWhenBatchFull, pool 10`,
  },
  "pgboss best": {
    label: "pg-boss, at its best",
    peer: "pgboss",
    settings: { localConcurrency: PGBOSS_BEST_WORKERS, batchSize: PGBOSS_BEST_BATCH, max: 10 },
    describe: `localConcurrency ${PGBOSS_BEST_WORKERS} x batchSize ${PGBOSS_BEST_BATCH}, ` +
      "burstWhenBatchFull (pg-boss documents no tuning guide; best median of a sweep here: " +
      "100x10, 200x8, 500x1, 500x4, 1000x2; change with --pgboss-best=BATCHxWORKERS)",
  },
};

function plan(): Measurement[] {
  const out: Measurement[] = [];
  if (want("enqueue")) {
    const api = { ours: "enqueueMany", graphile: "addJobs (add_jobs)", pgboss: "insert" };
    for (const peer of ["ours", "graphile", "pgboss"] as const) {
      out.push({
        id: `enqueue ${peer}`,
        label: `${peer} ${api[peer]}`,
        peer,
        kind: "enqueue",
        workers: 1,
        settings: {},
        describe: peer === "ours"
          ? "enqueueMany as shipped: 5,000 jobs per statement, one at a time " +
            "(zod-validated payloads)"
          : `${api[peer]}, ${CHUNK} jobs per call, one call at a time`,
      });
    }
    out.push({
      id: "enqueue ours parallel",
      label: "ours enqueueMany, 2 statements in flight",
      peer: "ours",
      kind: "enqueue",
      workers: 1,
      settings: { statementsInFlight: 2 },
      describe: "enqueueMany with statementsInFlight 2 (opt-in: input order kept within " +
        "each statement of 5,000, not across them)",
    });
  }
  if (want("drain")) {
    for (const [id, m] of Object.entries(drainSettings)) {
      out.push({ id, kind: "drain", workers: 1, ...m });
    }
  }
  if (want("limit")) {
    out.push({
      id: "limit",
      label: "in-database limit (one plpgsql loop)",
      peer: "ours",
      kind: "limit",
      workers: 1,
      settings: {},
      describe: `queue.claim(${LIMIT_BATCH}) + queue.complete + commit per batch, ` +
        "one backend, no client round trips, timed with clock_timestamp()",
    });
  }
  if (want("scale")) {
    const base: Record<string, string> = { ours: "ours shipped", graphile: "graphile best" };
    for (const peer of SCALE_PEERS) {
      const m = drainSettings[base[peer] ?? `${peer} best`];
      if (!m) throw new Error(`--scale-peers: unknown peer ${peer}`);
      for (const k of SCALE) {
        const id = `${base[peer] ?? `${peer} best`} x${k}`;
        // x1 is the drain row itself when that is measured too.
        if (k === 1 && want("drain")) continue;
        out.push({ ...m, id, kind: "drain", workers: k });
      }
    }
  }
  return PEERS.length ? out.filter((m) => PEERS.includes(m.peer)) : out;
}

/** Samples (jobs/s) per measurement id. */
const samples = new Map<string, number[]>();
const record = (id: string, x: number) => samples.set(id, [...(samples.get(id) ?? []), x]);
const summary = (id: string): Summary => summarize(samples.get(id) ?? []);

function childFor(peer: Peer, name: string, config: Record<string, unknown>): ProtocolChild {
  const arg = JSON.stringify(config);
  if (peer === "ours") {
    return new ProtocolChild(name, deno, ["run", "-A", "--quiet", "bench/workers/ours.ts", arg], {
      cwd: join(NODE_DIR, "..", ".."),
    });
  }
  const script = peer === "graphile" ? "graphile.mjs" : "pgboss.mjs";
  return new ProtocolChild(name, "node", [script, arg], { cwd: NODE_DIR });
}

/** Runs a child to completion (setup or enqueue) and returns its result. */
async function runToEnd(peer: Peer, name: string, config: Record<string, unknown>) {
  const child = childFor(peer, name, config);
  await child.done;
  if (child.error) throw new Error(`${name}: ${child.error}`);
  return child.result ?? {};
}

async function buildTemplates(cluster: BenchCluster): Promise<Record<Peer, string>> {
  const names: Record<Peer, string> = {
    ours: "bench_tpl_ours",
    graphile: "bench_tpl_graphile",
    pgboss: "bench_tpl_pgboss",
  };
  for (const n of Object.values(names)) await cluster.admin.unsafe(`create database ${n}`);
  const sql = postgres(withDatabase(cluster.url, names.ours), { max: 1, onnotice: () => {} });
  try {
    await applyBootstrap(sql);
    await applyMigrations(sql);
    await sql.unsafe(IN_DB_LIMIT_SQL);
  } finally {
    await sql.end();
  }
  await Promise.all([
    runToEnd("graphile", "graphile setup", {
      url: withDatabase(cluster.url, names.graphile),
      mode: "setup",
    }),
    runToEnd("pgboss", "pg-boss setup", {
      url: withDatabase(cluster.url, names.pgboss),
      mode: "setup",
    }),
  ]);
  return names;
}

const deadlineMs = () => Math.max(120_000, N * 5);

async function measure(cluster: BenchCluster, templates: Record<Peer, string>, m: Measurement) {
  const db = await cluster.createFrom(templates[m.peer]);
  try {
    const base = { url: db.url, n: N, chunk: CHUNK };
    if (m.kind === "enqueue") {
      const r = await runToEnd(m.peer, m.id, { ...base, mode: "enqueue", settings: m.settings });
      return (N / (r.ms as number)) * 1000;
    }
    await runToEnd(m.peer, `${m.id} fill`, { ...base, mode: "enqueue" });
    if (m.kind === "limit") {
      const r = await runInDbLimit(db.url, LIMIT_BATCH);
      if (r.n !== N) throw new Error(`in-database limit completed ${r.n} of ${N}`);
      return (N / r.ms) * 1000;
    }
    const children = Array.from(
      { length: m.workers },
      (_, i) =>
        childFor(m.peer, `${m.id} #${i + 1}`, { ...base, mode: "drain", settings: m.settings }),
    );
    try {
      await until(children, () => children.every((c) => c.ready), 60_000, `${m.id} ready`);
      await Promise.all(children.map((c) => c.send("go")));
      const total = () => children.reduce((s, c) => s + c.count, 0);
      await until(children, () => total() >= N, deadlineMs(), `${m.id} to run ${N} jobs`);
      await Promise.all(children.map((c) => c.send("stop")));
      await until(children, () => children.every((c) => c.result), 30_000, `${m.id} results`);
      const results = children.map((c) => c.result!) as { first: number; last: number }[];
      const ran = results.filter((r) => r.first > 0);
      const first = Math.min(...ran.map((r) => r.first));
      const last = Math.max(...ran.map((r) => r.last));
      if (total() !== N) console.log(`  note: ${m.id} ran ${total()} handler calls for ${N} jobs`);
      return (N / (last - first)) * 1000;
    } finally {
      await Promise.all(children.map((c) => c.close()));
    }
  } finally {
    await cluster.drop(db.name);
  }
}

async function latency(cluster: BenchCluster, templates: Record<Peer, string>): Promise<number[]> {
  const db = await cluster.createFrom(templates.ours);
  try {
    const r = await runToEnd("ours", "latency", {
      url: db.url,
      mode: "latency",
      n: LATENCY,
      settings: { concurrency: C },
    });
    return r.samples as number[];
  } finally {
    await cluster.drop(db.name);
  }
}

const loadavg = async () =>
  (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");

function printResults(ms: Measurement[], lat: number[]) {
  const byId = new Map(ms.map((m) => [m.id, m]));
  const has = (id: string) => (samples.get(id)?.length ?? 0) > 0;
  const s = summary;

  console.log("\nSettings");
  table(
    ["row", "settings"],
    ms.filter((m) => !/ x\d+$/.test(m.id)).map((m) => [m.label, m.describe]),
  );

  if (want("enqueue")) {
    console.log(`\nEnqueue, batched (${N} jobs; jobs/s: median (min-max, n))`);
    table(
      ["library", "jobs/s", "ours / this", "ours, 2 in flight / this"],
      (["ours", "ours parallel", "graphile", "pgboss"] as const).filter((p) => has(`enqueue ${p}`))
        .map((p) => [
          byId.get(`enqueue ${p}`)!.label,
          fmtSummary(s(`enqueue ${p}`)),
          p.startsWith("ours") ? "-" : fmtRatio(ratio(s("enqueue ours"), s(`enqueue ${p}`))),
          p.startsWith("ours")
            ? "-"
            : fmtRatio(ratio(s("enqueue ours parallel"), s(`enqueue ${p}`))),
        ]),
    );
  }

  if (want("drain") || want("limit")) {
    console.log(`\nDrain (${N} queued no-op jobs, first to last handler call; jobs/s)`);
    const rows = [...Object.keys(drainSettings), "limit"].filter(has);
    table(
      ["queue", "jobs/s", "ours shipped / this", "this / in-db limit"],
      rows.map((id) => [
        byId.get(id)!.label,
        fmtSummary(s(id)),
        id === "ours shipped" ? "-" : fmtRatio(ratio(s("ours shipped"), s(id))),
        id === "limit" ? "-" : fmtRatio(ratio(s(id), s("limit"))),
      ]),
    );
    const pair = (a: string, b: string) =>
      has(a) && has(b)
        ? `${fmtRatio(ratio(s(a), s(b)))} (${
          pairedRange(samples.get(a) ?? [], samples.get(b) ?? []).map(fmtRatio).join("-")
        } per round)`
        : "-";
    console.log("\nComparisons (ratio of medians)");
    table(["comparison", "graphile-worker", "pg-boss"], [
      [
        "equal settings: ours / peer",
        pair("ours equal", "graphile equal"),
        pair("ours equal", "pgboss equal"),
      ],
      [
        "each at its best: ours best / peer best",
        pair("ours best", "graphile best"),
        pair("ours best", "pgboss best"),
      ],
      [
        "as shipped: ours shipped / peer best",
        pair("ours shipped", "graphile best"),
        pair("ours shipped", "pgboss best"),
      ],
    ]);
  }

  if (want("scale")) {
    const base: Record<string, string> = { ours: "ours shipped", graphile: "graphile best" };
    const id = (peer: string, k: number) => {
      const b = base[peer] ?? `${peer} best`;
      return k === 1 && want("drain") ? b : `${b} x${k}`;
    };
    console.log("\nScale curve (worker processes on one queue; total jobs/s, per worker)");
    table(
      ["workers", ...SCALE_PEERS.flatMap((p) => [`${p} jobs/s`, `${p} per worker`])],
      SCALE.map((k) => [
        String(k),
        ...SCALE_PEERS.flatMap((p) => {
          const x = s(id(p, k));
          return [fmtSummary(x), compact(x.median / k)];
        }),
      ]),
    );
  }

  if (lat.length) {
    console.log(
      `\nEnqueue -> handler start, ours, worker listening (${lat.length} single jobs): ` +
        `p50 ${quantile(lat, 0.5).toFixed(2)} ms, p99 ${quantile(lat, 0.99).toFixed(2)} ms`,
    );
  }

  const targets: Target[] = [];
  const t = (what: string, a: string, b: string, op: ">=" | "<=", bound: number) => {
    if (has(a) && has(b)) {
      targets.push({
        what,
        ratio: ratio(s(a), s(b)),
        range: pairedRange(samples.get(a) ?? [], samples.get(b) ?? []),
        op,
        bound,
      });
    } else targets.push({ what, ratio: NaN, op, bound });
  };
  t(
    "drain, ours shipped / graphile-worker at its best",
    "ours shipped",
    "graphile best",
    ">=",
    1.5,
  );
  t("drain, ours shipped / in-database limit", "ours shipped", "limit", ">=", 0.6);
  t(
    "enqueue batched, ours / graphile-worker add_jobs",
    "enqueue ours",
    "enqueue graphile",
    ">=",
    1.0,
  );
  t(
    "(same, ours opt-in 2 statements in flight)",
    "enqueue ours parallel",
    "enqueue graphile",
    ">=",
    1.0,
  );
  targetsTable("Targets (DESIGN §6)", targets);
}

async function main() {
  await ensureNodePeers();
  const cluster = await BenchCluster.start("queue", DURABLE);
  try {
    const pgVersion = await cluster.version();
    console.log(
      `bench:queue  N=${N}, ${ROUNDS} rounds, interleaved; Postgres ${pgVersion} ` +
        `(${DURABLE ? "fsync on" : "fsync off, synchronous_commit off"}); ` +
        `deno ${Deno.version.deno}, node ${await nodeVersion()}, graphile-worker ${await peerVersion(
          "graphile-worker",
        )}, pg-boss ${await peerVersion("pg-boss")}; load ${await loadavg()}`,
    );
    const templates = await buildTemplates(cluster);
    const ms = plan();
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order each round so no peer always runs first (or last).
      const order = ms.map((_, i) => ms[(i + r * 3) % ms.length]!);
      for (const m of order) {
        const x = await measure(cluster, templates, m);
        record(m.id, x);
        console.log(`round ${r + 1}/${ROUNDS}  ${m.id.padEnd(22)} ${compact(x)} jobs/s`);
      }
    }
    const lat = LATENCY > 0 ? await latency(cluster, templates) : [];
    printResults(ms, lat);
    console.log(
      `\nload at the end: ${await loadavg()} (2 cores; absolute numbers drift, ratios less)`,
    );
  } finally {
    await cluster.close();
  }
}

await main();
