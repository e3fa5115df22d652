/**
 * `deno task bench:events`: this starter's event log (supabase/migrations/
 * 20261124005000_events.sql and 20261124005001_events_subscriptions.sql, through
 * its SQL API from Deno with postgres.js) against Emmett's PostgreSQL event store
 * (@event-driven-io/emmett-postgresql, under Node, installed by the bench into
 * bench/node), on one embedded Postgres.
 *
 * Measurements (each on a fresh database cloned from a per-store template):
 * - appends/s, single: --n-single appends of one event (ours events.append,
 *   Emmett appendToStream with one event), --concurrency appenders on a pool of
 *   --concurrency connections;
 * - appends/s, batched: --n events in appends of --batch events (ours
 *   events.append_many, Emmett appendToStream with --batch events: its batch
 *   append), same appenders and pool;
 * - catch-up reads, events/s: --n events already in the log (filled once per store
 *   by its own batched append, one writer, then VACUUM ANALYZE), read from the
 *   beginning by one reader, --read-batch per fetch, a handler call per event:
 *   as a subscription (ours claim_batch + ack; Emmett its consumer with one
 *   reactor, checkpointed), and raw (ours events.read; Emmett readMessagesBatch,
 *   the global read its consumer pulls with); timed from the first handler call
 *   to the N-th, as bench:queue times drains;
 * - append -> handler delay, ours, with a worker running: --latency single events
 *   per round, one at a time, each timed from the append's start to its handler
 *   call. The worker is the shipped subscription runner (runSubscriptions, what
 *   queue-worker calls, in its listen mode); the output says so.
 * Both stores get the same workload: --streams streams (append k goes to stream
 * `bench-${k % streams}`; appenders never share a stream), events of type
 * "bench.event" with data {"i": i, "pad": "x..."} of about --event-bytes bytes of
 * JSON, no expected version. Every measurement runs once per round, rounds
 * interleave the stores (the order rotates each round), and the tables print the
 * median, min-max and n of each and ratios of medians with their per-round range.
 * Nothing here asserts a timing; the targets table reports met/missed.
 *
 * Flags: --n=20000 --n-single=5000 --rounds=3 --streams=100 --event-bytes=256
 *   --batch=100 --concurrency=10 --read-batch=1000 --latency=300 (per round; 0:
 *   skip) --latency-gap=5 (ms between latency appends) --only=append,read,latency
 *   (default: all) --peers=ours,emmett (default: both) --durable (fsync on)
 */
import { join } from "node:path";
import { applyBootstrap, applyMigrations } from "../local/database/mod.ts";
import { withDatabase } from "../tests/_harness/database.ts";
import { flag, num, words } from "./lib/args.ts";
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

const N = num("n", 20_000);
const N_SINGLE = num("n-single", 5_000);
const ROUNDS = num("rounds", 3);
const STREAMS = num("streams", 100);
const EVENT_BYTES = num("event-bytes", 256);
const BATCH = num("batch", 100);
const C = num("concurrency", 10);
const READ_BATCH = num("read-batch", 1_000);
const LATENCY = num("latency", 300);
const LATENCY_GAP = num("latency-gap", 5);
const ONLY = words("only");
const PEERS = words("peers");
const DURABLE = flag("durable", false);
const want = (group: string) => ONLY.length === 0 || ONLY.includes(group);
const wantPeer = (peer: Peer) => PEERS.length === 0 || PEERS.includes(peer);

for (
  const [flagName, given, known] of [
    ["only", ONLY, ["append", "read", "latency"]],
    ["peers", PEERS, ["ours", "emmett"]],
  ] as const
) {
  const unknown = given.filter((x) => !(known as readonly string[]).includes(x));
  if (unknown.length) {
    console.error(`bench:events: --${flagName}: unknown ${unknown.join(", ")} (known: ${known})`);
    Deno.exit(1);
  }
}
if (STREAMS % C !== 0) {
  console.error(
    `bench:events: --streams (${STREAMS}) must be a multiple of --concurrency (${C}) ` +
      "so that appenders never share a stream",
  );
  Deno.exit(1);
}
// {"i":<up to 6 digits>,"pad":"..."}: 15 characters of JSON around the pad, about 5 for i.
const PAD = Math.max(0, EVENT_BYTES - 20);
// Emmett runs under Node; say so before anything starts, not from deep in a round.
if (PEERS.length === 0 || PEERS.includes("emmett")) {
  await requireTools("bench:events", [NPM]);
  await requireRealNode("bench:events");
}

type Peer = "ours" | "emmett";
type Kind = "append-single" | "append-batched" | "read-subscription" | "read-raw" | "latency";

interface Measurement {
  id: string;
  label: string;
  peer: Peer;
  kind: Kind;
  /** Human-readable settings for the report. */
  describe: string;
}

const WORKLOAD = {
  streams: STREAMS,
  pad: PAD,
  batch: BATCH,
  concurrency: C,
  readBatch: READ_BATCH,
};
const deno = Deno.execPath();
const PEER_NAME: Record<Peer, string> = { ours: "ours", emmett: "Emmett" };

const DESCRIBE: Record<Kind, Record<Peer, string>> = {
  "append-single": {
    ours: `events.append, ${C} appenders, postgres.js pool of ${C} (prepared statements)`,
    emmett: `appendToStream with 1 event, ${C} appenders, pg.Pool of ${C} ` +
      "(connectionOptions { pooled: true, pool }), autoMigration None",
  },
  "append-batched": {
    ours: `events.append_many, ${BATCH} events per call, ${C} appenders, pool of ${C}`,
    emmett: `appendToStream with ${BATCH} events per call (its batch append), ${C} appenders, ` +
      `pg.Pool of ${C}, autoMigration None`,
  },
  "read-subscription": {
    ours: `events.claim_batch(${READ_BATCH}) -> handler per event -> events.ack, one reader`,
    emmett: `postgreSQLEventStoreConsumer + one reactor (checkpoint per message, its design), ` +
      `pulling batchSize ${READ_BATCH}, pullingFrequencyInMs 0 (default 50), one reader`,
  },
  "read-raw": {
    ours: `events.read(after, ${READ_BATCH}) loop, handler per event`,
    emmett: `readMessagesBatch({ after, batchSize: ${READ_BATCH} }) loop, handler per event`,
  },
  latency: {
    ours: `${LATENCY} single events.append per round, ${LATENCY_GAP} ms apart; worker: ` +
      `runSubscriptions (shipped runner), listen mode, batchSize ${READ_BATCH}`,
    emmett: "-",
  },
};

const LABEL: Record<Kind, string> = {
  "append-single": "appends, single",
  "append-batched": "appends, batched",
  "read-subscription": "catch-up, subscription",
  "read-raw": "catch-up, raw read",
  latency: "append -> handler",
};

function plan(): Measurement[] {
  const kinds: Kind[] = [
    ...(want("append") ? ["append-single", "append-batched"] as const : []),
    ...(want("read") ? ["read-subscription", "read-raw"] as const : []),
  ];
  const out: Measurement[] = [];
  for (const kind of kinds) {
    for (const peer of ["ours", "emmett"] as const) {
      if (!wantPeer(peer)) continue;
      out.push({
        id: `${kind} ${peer}`,
        label: `${LABEL[kind]}, ${PEER_NAME[peer]}`,
        peer,
        kind,
        describe: DESCRIBE[kind][peer],
      });
    }
  }
  if (want("latency") && LATENCY > 0 && wantPeer("ours")) {
    out.push({
      id: "latency ours",
      label: `${LABEL.latency}, ours`,
      peer: "ours",
      kind: "latency",
      describe: DESCRIBE.latency.ours,
    });
  }
  return out;
}

/** Samples (events/s; latency: ms) per measurement id. */
const samples = new Map<string, number[]>();
const record = (id: string, x: number) => samples.set(id, [...(samples.get(id) ?? []), x]);
const summary = (id: string): Summary => summarize(samples.get(id) ?? []);
const has = (id: string) => (samples.get(id)?.length ?? 0) > 0;
/** Every latency sample of every round. */
const latencyAll: number[] = [];
let workerUsed = "";
/** The worker's counters (claims, empty claims, re-polls), summed over rounds. */
const workerStats: Record<string, number> = {};

function childFor(peer: Peer, name: string, config: Record<string, unknown>): ProtocolChild {
  const arg = JSON.stringify(config);
  if (peer === "ours") {
    return new ProtocolChild(name, deno, [
      "run",
      "-A",
      "--quiet",
      "bench/workers/events_ours.ts",
      arg,
    ], {
      cwd: join(NODE_DIR, "..", ".."),
    });
  }
  return new ProtocolChild(name, "node", ["emmett.mjs", arg], { cwd: NODE_DIR });
}

/** Runs a child to its result (or error, or the deadline) and stops it. */
async function runToEnd(
  peer: Peer,
  name: string,
  config: Record<string, unknown>,
  deadlineMs = 900_000,
): Promise<Record<string, unknown>> {
  const child = childFor(peer, name, config);
  try {
    await until([child], () => child.result !== null, deadlineMs, name);
    await Promise.race([child.done, new Promise((r) => setTimeout(r, 10_000))]);
  } finally {
    await child.close();
  }
  return child.result!;
}

/** Events in a store's database, and the average size of their data as JSON text. */
async function contents(cluster: BenchCluster, peer: Peer, db: string) {
  const query = peer === "ours"
    ? "select count(*)::int as n, coalesce(avg(octet_length(data::text)), 0)::float8 as bytes from events.events"
    : "select count(*)::int as n, coalesce(avg(octet_length(message_data::text)), 0)::float8 as bytes from emt_messages";
  const [row] = await cluster.on(db, (sql) => sql.unsafe(query));
  return { n: row!.n as number, bytes: row!.bytes as number };
}

interface Templates {
  /** Empty stores (appends, latency). */
  empty: Record<Peer, string>;
  /** N events each (reads). */
  filled: Record<Peer, string>;
  /** Average data size as stored, per store (from the filled templates). */
  bytes: Partial<Record<Peer, number>>;
  fillMs: Partial<Record<Peer, number>>;
}

async function buildTemplates(cluster: BenchCluster, peers: Peer[]): Promise<Templates> {
  const t: Templates = {
    empty: { ours: "bench_tpl_ours", emmett: "bench_tpl_emmett" },
    filled: { ours: "bench_filled_ours", emmett: "bench_filled_emmett" },
    bytes: {},
    fillMs: {},
  };
  for (const peer of peers) await cluster.admin.unsafe(`create database ${t.empty[peer]}`);
  if (peers.includes("ours")) {
    await cluster.on(t.empty.ours, async (sql) => {
      await applyBootstrap(sql);
      await applyMigrations(sql);
    });
  }
  if (peers.includes("emmett")) {
    await runToEnd("emmett", "Emmett setup", {
      url: withDatabase(cluster.url, t.empty.emmett),
      mode: "setup",
      n: 0,
      workload: WORKLOAD,
    });
  }
  if (!want("read")) return t;
  for (const peer of peers) {
    const db = await cluster.createFrom(t.empty[peer], t.filled[peer]);
    const r = await runToEnd(peer, `${peer} fill`, {
      url: db.url,
      mode: "fill",
      n: N,
      workload: WORKLOAD,
    });
    t.fillMs[peer] = r.ms as number;
    await cluster.on(db.name, (sql) => sql.unsafe("vacuum (analyze)"));
    const c = await contents(cluster, peer, db.name);
    if (c.n !== N) throw new Error(`${peer} fill: ${c.n} events in the log, expected ${N}`);
    t.bytes[peer] = c.bytes;
  }
  return t;
}

async function measure(cluster: BenchCluster, templates: Templates, m: Measurement) {
  const reading = m.kind.startsWith("read");
  const db = await cluster.createFrom(reading ? templates.filled[m.peer] : templates.empty[m.peer]);
  try {
    const n = m.kind === "append-single" ? N_SINGLE : m.kind === "latency" ? LATENCY : N;
    const r = await runToEnd(m.peer, m.id, {
      url: db.url,
      mode: m.kind === "latency" ? "latency" : m.kind,
      n,
      workload: WORKLOAD,
      gapMs: LATENCY_GAP,
    });
    if (m.kind === "latency") {
      const lat = r.samples as number[];
      workerUsed = r.worker as string;
      for (const [k, v] of Object.entries((r.stats ?? {}) as Record<string, number>)) {
        workerStats[k] = (workerStats[k] ?? 0) + v;
      }
      latencyAll.push(...lat);
      record("latency p50", quantile(lat, 0.5));
      record("latency p99", quantile(lat, 0.99));
      return quantile(lat, 0.99);
    }
    if (reading) {
      const { first, last } = r as { first: number; last: number };
      return (n / (last - first)) * 1000;
    }
    // Correctness before speed: every append landed.
    const c = await contents(cluster, m.peer, db.name);
    if (c.n !== n) throw new Error(`${m.id}: ${c.n} events in the log after ${n} appended`);
    return (n / (r.ms as number)) * 1000;
  } finally {
    await cluster.drop(db.name);
  }
}

const loadavg = async () =>
  (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");

const pair = (a: string, b: string) =>
  has(a) && has(b)
    ? `${fmtRatio(ratio(summary(a), summary(b)))} (${
      pairedRange(samples.get(a) ?? [], samples.get(b) ?? []).map(fmtRatio).join("-")
    } per round)`
    : "-";

function printResults(ms: Measurement[], templates: Templates) {
  console.log("\nSettings");
  table(["row", "settings"], ms.map((m) => [m.label, m.describe]));
  const bytes = (p: Peer) =>
    templates.bytes[p] === undefined ? "-" : `${templates.bytes[p]!.toFixed(0)} bytes`;
  console.log(
    `workload: ${STREAMS} streams, data {"i", "pad"} ~${EVENT_BYTES} bytes of JSON ` +
      `(as stored, avg data::text: ours ${bytes("ours")}, Emmett ${bytes("emmett")}), ` +
      `no expected version; reads: ${N} events filled by each store's batched append ` +
      `(one writer; ours ${compact(templates.fillMs.ours ?? NaN)} ms, Emmett ${
        compact(templates.fillMs.emmett ?? NaN)
      } ms), then VACUUM ANALYZE`,
  );

  const rows: [string, Kind, number][] = [
    ["appends, single (1 event per append)", "append-single", N_SINGLE],
    [`appends, batched (${BATCH} events per append)`, "append-batched", N],
    ["catch-up, subscription (checkpointed)", "read-subscription", N],
    ["catch-up, raw global read", "read-raw", N],
  ];
  const shown = rows.filter(([, k]) => has(`${k} ours`) || has(`${k} emmett`));
  if (shown.length) {
    console.log("\nThroughput (events/s: median (min-max, n))");
    table(
      ["measurement", "events", "ours", "Emmett", "ours / Emmett"],
      shown.map(([what, k, n]) => [
        what,
        String(n),
        fmtSummary(summary(`${k} ours`)),
        fmtSummary(summary(`${k} emmett`)),
        pair(`${k} ours`, `${k} emmett`),
      ]),
    );
  }

  if (latencyAll.length) {
    const p50 = summary("latency p50");
    const p99 = summary("latency p99");
    const ms = (x: number) => `${x.toFixed(2)} ms`;
    console.log(
      `\nAppend -> handler, ours, worker running (${LATENCY} events per round, ` +
        `${LATENCY_GAP} ms apart)\nworker: ${workerUsed}` +
        (Object.keys(workerStats).length
          ? `\nworker counters over all rounds: ${
            Object.entries(workerStats).map(([k, v]) => `${k} ${v}`).join(", ")
          }`
          : ""),
    );
    table(["", "p50", "p99", "max"], [
      [
        "per round: median (min-max)",
        `${ms(p50.median)} (${ms(p50.min)}-${ms(p50.max)})`,
        `${ms(p99.median)} (${ms(p99.min)}-${ms(p99.max)})`,
        "-",
      ],
      [
        `all ${latencyAll.length} samples`,
        ms(quantile(latencyAll, 0.5)),
        ms(quantile(latencyAll, 0.99)),
        ms(Math.max(...latencyAll)),
      ],
    ]);
  }

  const targets: Target[] = [];
  const t = (what: string, k: Kind) => {
    const a = `${k} ours`;
    const b = `${k} emmett`;
    targets.push(
      has(a) && has(b)
        ? {
          what,
          ratio: ratio(summary(a), summary(b)),
          range: pairedRange(samples.get(a) ?? [], samples.get(b) ?? []),
          op: ">=",
          bound: 1.5,
        }
        : { what, ratio: NaN, op: ">=", bound: 1.5 },
    );
  };
  t("appends/s, single: ours / Emmett", "append-single");
  t("appends/s, batched: ours / Emmett", "append-batched");
  t("catch-up reads/s, subscription: ours claim_batch+ack / Emmett consumer", "read-subscription");
  t("catch-up reads/s, raw: ours events.read / Emmett readMessagesBatch", "read-raw");
  const p99 = summary("latency p99");
  targets.push({
    what: "append -> handler p99, ours (median of rounds)",
    ratio: p99.median,
    range: p99.n ? [p99.min, p99.max] : undefined,
    op: "<",
    bound: 50,
    unit: "ms",
  });
  targetsTable("Targets (events issue)", targets);
}

async function main() {
  const peers = (["ours", "emmett"] as const).filter(wantPeer);
  if (peers.includes("emmett")) await ensureNodePeers();
  const cluster = await BenchCluster.start("events", DURABLE);
  try {
    const pgVersion = await cluster.version();
    const emmettVersion = peers.includes("emmett")
      ? `, node ${await nodeVersion()}, @event-driven-io/emmett-postgresql ${await peerVersion(
        "@event-driven-io/emmett-postgresql",
      )}`
      : "";
    console.log(
      `bench:events  N=${N} (single appends ${N_SINGLE}), ${ROUNDS} rounds, interleaved; ` +
        `Postgres ${pgVersion} (${
          DURABLE ? "fsync on" : "fsync off, synchronous_commit off"
        }); deno ${Deno.version.deno}${emmettVersion}; load ${await loadavg()}`,
    );
    if (ROUNDS < 3) console.log("note: fewer than 3 rounds: a smoke run, not a result");
    const templates = await buildTemplates(cluster, [...peers]);
    const ms = plan();
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order each round so no store always runs first (or last).
      const order = ms.map((_, i) => ms[(i + r) % ms.length]!);
      for (const m of order) {
        const x = await measure(cluster, templates, m);
        record(m.id, x);
        const unit = m.kind === "latency" ? " ms p99" : " events/s";
        console.log(`round ${r + 1}/${ROUNDS}  ${m.id.padEnd(24)} ${compact(x)}${unit}`);
      }
    }
    printResults(ms, templates);
    console.log(
      `\nload at the end: ${await loadavg()} (2 cores; absolute numbers drift, ratios less)`,
    );
  } finally {
    await cluster.close();
  }
}

await main();
