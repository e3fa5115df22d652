/**
 * bench:events child for this starter's event log (Deno, as deployed), on its SQL
 * API through postgres.js (npm:postgres@3, prepared statements on).
 *
 * Argument: one JSON object {"url", "mode", "n", "workload": {...}, ...}; the
 * workload (streams, pad, batch, concurrency, readBatch) is the same one the
 * Emmett child gets (bench/node/emmett.mjs), built by the same rules:
 * - append k (0-based) goes to stream `bench-${k % streams}`; appender j of
 *   `concurrency` does appends k = j, j + concurrency, ... (streams is a multiple
 *   of concurrency, so appenders never share a stream);
 * - event i: type "bench.event", data {"i": i, "pad": "x" * pad}, no metadata,
 *   no expected version.
 * Modes:
 * - append-single: n appends of one event (events.append), `concurrency` at once
 *   on a pool of `concurrency` connections; timed after the pool is open.
 * - append-batched: n events as appends of `batch` events (events.append_many).
 * - fill: the same with one appender (untimed; it builds the read template: one
 *   writer, so both stores' read orders are plain commit order).
 * - read-subscription: a subscription (events.subscribe, untimed) caught up by one
 *   reader: claim_batch(readBatch) -> handler per event -> ack, until n handled.
 * - read-raw: events.read(after, readBatch) in a loop, handler per event.
 * - latency: the shipped subscription runner running (runSubscriptions from
 *   supabase/functions/_shared/events, the code queue-worker calls, in its listen
 *   mode: LISTEN events + claim_batch + handler + ack), n single events appended
 *   one at a time on another connection, `gapMs` apart; each one's append start
 *   -> handler call. One untimed warm-up event first: the runner is listening and
 *   its connections are open once it has been handled.
 * Reads report the first and last handler call (clock(), comparable across
 * processes); a read that sees fewer or more than n events, or positions out of
 * order, is an error.
 */
import postgres from "npm:postgres@3";
import {
  defineSubscription,
  type EventRecord,
  runSubscriptions,
} from "../../supabase/functions/_shared/mod.ts";
import { clock, emit } from "./protocol.ts";

interface Workload {
  streams: number;
  pad: number;
  batch: number;
  concurrency: number;
  readBatch: number;
}

interface Config {
  url: string;
  mode:
    | "append-single"
    | "append-batched"
    | "fill"
    | "read-subscription"
    | "read-raw"
    | "latency";
  n: number;
  workload: Workload;
  gapMs?: number;
}

const cfg = JSON.parse(Deno.args[0]!) as Config;
const w = cfg.workload;
const pad = "x".repeat(w.pad);
const TYPE = "bench.event";
const streamOf = (k: number) => `bench-${k % w.streams}`;
const dataOf = (i: number) => ({ i, pad });

/** A running subscription worker: the shipped runner, stopped by `stop()`. */
interface RunningWorker {
  readonly describe: string;
  /** The runner's summary (claimed, handled, ...), after it stopped. */
  stats(): Record<string, number>;
  stop(): Promise<void>;
}

const silent = {
  debug() {},
  info() {},
  warn(msg: string, fields?: Record<string, unknown>) {
    console.error(msg, JSON.stringify(fields ?? {}));
  },
  error(msg: string, fields?: Record<string, unknown>) {
    console.error(msg, JSON.stringify(fields ?? {}));
  },
  child() {
    return silent;
  },
  enabled: () => false,
};

/** Starts runSubscriptions (listen mode) on `sql` with one subscription. */
function startRunner(options: {
  sql: postgres.Sql;
  subscription: string;
  batchSize: number;
  handler: (e: EventRecord) => void;
}): RunningWorker {
  const stop = new AbortController();
  const running = runSubscriptions({
    sql: options.sql,
    subscriptions: [
      defineSubscription({ name: options.subscription, startAt: "now", handler: options.handler }),
    ],
    mode: "listen",
    batchSize: options.batchSize,
    signal: stop.signal,
    log: silent,
  });
  let summary: Record<string, number> = {};
  return {
    describe: "the shipped runner: runSubscriptions (supabase/functions/_shared/events, what " +
      `queue-worker calls), mode listen (LISTEN events, claim_batch(${options.batchSize}), ` +
      "handler, ack; re-poll at 1, 2, 4 ... ms after a notification while the event is not " +
      "yet claimable), default concurrency and lease",
    stats: () => summary,
    async stop() {
      stop.abort();
      const s = await running;
      summary = { claimed: s.claimed, handled: s.handled, retried: s.retried };
    },
  };
}

const sql = postgres(cfg.url, {
  max: cfg.mode.startsWith("append") || cfg.mode === "fill" ? w.concurrency : 2,
  onnotice: () => {},
});

/** Opens `k` connections of the pool before the clock starts. */
async function warm(k: number) {
  await Promise.all(Array.from({ length: k }, () => sql`select pg_sleep(0.01)`));
}

/** Runs `appends` appends over `appenders` concurrent appenders; `one(k)` does append k. */
async function appendAll(
  appends: number,
  appenders: number,
  one: (k: number) => Promise<void>,
): Promise<number> {
  await warm(appenders);
  const t0 = clock();
  await Promise.all(
    Array.from({ length: appenders }, async (_, j) => {
      for (let k = j; k < appends; k += appenders) await one(k);
    }),
  );
  return clock() - t0;
}

/** Counts handler calls of a read; every event must come exactly once. */
function readCounter(n: number) {
  const seen = new Set<string>();
  let first = 0;
  let last = 0;
  return {
    hit(position: string) {
      const at = clock();
      if (seen.has(position)) throw new Error(`position ${position} delivered twice`);
      seen.add(position);
      if (seen.size === 1) first = at;
      last = at;
    },
    get count() {
      return seen.size;
    },
    result() {
      if (seen.size !== n) throw new Error(`read ${seen.size} events, expected ${n}`);
      return { type: "result", count: seen.size, first, last };
    },
  };
}

async function appendBatched(n: number, appenders: number): Promise<number> {
  const appends = Math.ceil(n / w.batch);
  return await appendAll(appends, appenders, async (k) => {
    const from = k * w.batch;
    const events = Array.from(
      { length: Math.min(w.batch, n - from) },
      (_, x) => ({ type: TYPE, data: dataOf(from + x) }),
    );
    await sql`select position, version from events.append_many(${streamOf(k)}, ${
      sql.json(events)
    })`;
  });
}

async function readSubscription(n: number) {
  const name = "bench";
  await sql`select events.subscribe(${name}, '{}'::jsonb, 'beginning')`;
  await warm(1);
  const counter = readCounter(n);
  while (counter.count < n) {
    const rows = await sql<{ position: string; data: unknown; lease_token: string }[]>`
      select position, stream, type, data, version, lease_token
      from events.claim_batch(${name}, ${w.readBatch}, 30, 'bench')`;
    if (rows.length === 0) throw new Error(`caught up after ${counter.count} of ${n} events`);
    for (const row of rows) counter.hit(row.position);
    await sql`select events.ack(${name}, ${rows[0]!.lease_token}::uuid,
      ${rows.map((r) => r.position)}::bigint[])`;
  }
  return counter.result();
}

async function readRaw(n: number) {
  await warm(1);
  const counter = readCounter(n);
  let after = "0";
  while (counter.count < n) {
    const rows = await sql<{ position: string; data: unknown }[]>`
      select position, stream, type, data, metadata, version, created_at
      from events.read(${after}::bigint, ${w.readBatch})`;
    if (rows.length === 0) throw new Error(`caught up after ${counter.count} of ${n} events`);
    for (const row of rows) counter.hit(row.position);
    after = rows.at(-1)!.position;
  }
  return counter.result();
}

async function latency(n: number, gapMs: number) {
  const name = "latency";
  await sql`select events.subscribe(${name}, '{}'::jsonb, 'now')`;
  const pending = new Map<number, (at: number) => void>();
  let worker: RunningWorker | null = null;
  const appender = postgres(cfg.url, { max: 1, onnotice: () => {} });
  try {
    worker = startRunner({
      sql,
      subscription: name,
      batchSize: w.readBatch,
      handler: (e) => pending.get(e.data.k as number)?.(clock()),
    });
    await appender`select 1`;
    // Untimed warm-up: once its handler ran, the runner listens and its connections are open.
    const warmed = new Promise<number>((r) => pending.set(-1, r));
    await appender`select events.append('warm-up', ${TYPE}, ${sql.json({ k: -1 })})`;
    await warmed;
    pending.delete(-1);
    const samples: number[] = [];
    for (let k = 0; k < n; k++) {
      const handled = new Promise<number>((r) => pending.set(k, r));
      const t0 = clock();
      await appender`select events.append(${streamOf(k)}, ${TYPE}, ${sql.json({ k, pad })})`;
      const at = await Promise.race([
        handled,
        new Promise<number>((_, reject) =>
          setTimeout(() => reject(new Error(`event ${k} not handled within 10 s`)), 10_000)
        ),
      ]);
      samples.push(at - t0);
      pending.delete(k);
      await new Promise((r) => setTimeout(r, gapMs));
    }
    const running = worker;
    worker = null;
    await running.stop();
    return { type: "result", samples, worker: running.describe, stats: running.stats() };
  } finally {
    await worker?.stop();
    await appender.end({ timeout: 1 });
  }
}

try {
  if (cfg.mode === "append-single") {
    const ms = await appendAll(cfg.n, w.concurrency, async (k) => {
      await sql`select events.append(${streamOf(k)}, ${TYPE}, ${sql.json(dataOf(k))})`;
    });
    emit({ type: "result", ms });
  } else if (cfg.mode === "append-batched") {
    emit({ type: "result", ms: await appendBatched(cfg.n, w.concurrency) });
  } else if (cfg.mode === "fill") {
    emit({ type: "result", ms: await appendBatched(cfg.n, 1) });
  } else if (cfg.mode === "read-subscription") {
    emit(await readSubscription(cfg.n));
  } else if (cfg.mode === "read-raw") {
    emit(await readRaw(cfg.n));
  } else if (cfg.mode === "latency") {
    emit(await latency(cfg.n, cfg.gapMs ?? 5));
  } else {
    throw new Error(`unknown mode ${cfg.mode}`);
  }
} catch (error) {
  emit({ type: "error", message: String((error as Error)?.stack ?? error) });
} finally {
  await sql.end({ timeout: 1 });
}
Deno.exit(0);
