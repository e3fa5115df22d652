// bench:events child for Emmett's PostgreSQL event store
// (@event-driven-io/emmett-postgresql), under Node (its own runtime).
// Argument: {"url", "mode", "n", "workload": {streams, pad, batch, concurrency, readBatch}}.
// The workload is built by the same rules as bench/workers/events_ours.ts: append k
// goes to stream `bench-${k % streams}`, appender j does appends j, j + concurrency,
// ...; event i is {type: "bench.event", data: {i, pad: "x" * pad}}, no metadata
// of ours, no expected version.
// Modes:
// - setup: schema.migrate() (its own migrations; template database).
// - append-single: n appendToStream calls of one event, `concurrency` at once.
// - append-batched: appendToStream with `batch` events per call (its batch append).
// - fill: append-batched with one appender, untimed (the read template).
// - read-subscription: its consumer (postgreSQLEventStoreConsumer) with one reactor
//   (a checkpointed processor: its subscription), pulling batchSize readBatch,
//   pullingFrequencyInMs 0, from the beginning, until caught up.
// - read-raw: readMessagesBatch (its global read, what the consumer pulls with) in
//   a loop, readBatch per call.
// Every store and consumer runs on a pg Pool of `concurrency` connections (reads:
// 2), passed as connectionOptions { pooled: true, pool } (dumbo ignores a `max` in
// connectionOptions in this version) and opened before the clock starts. The
// schema is already there, so autoMigration is "None" (no per-process migration
// check on the first append).
import { clock, config, emit, load, runChild } from "./protocol.mjs";

const { default: pg } = await load("pg");
const emmett = await load("@event-driven-io/emmett-postgresql");
const { dumbo } = await load("@event-driven-io/dumbo");

const TYPE = "bench.event";

runChild(async () => {
  const { url, mode, n, workload: w } = config();
  const pad = "x".repeat(w.pad);
  const streamOf = (k) => `bench-${k % w.streams}`;
  const dataOf = (i) => ({ i, pad });

  if (mode === "setup") {
    const store = emmett.getPostgreSQLEventStore(url);
    await store.schema.migrate();
    await store.close();
    emit({ type: "result" });
    return;
  }

  const appending = mode.startsWith("append") || mode === "fill";
  const pool = new pg.Pool({ connectionString: url, max: appending ? w.concurrency : 2 });
  pool.on("error", () => {});
  const warm = async (k) => {
    const clients = await Promise.all(Array.from({ length: k }, () => pool.connect()));
    await Promise.all(clients.map((c) => c.query("select 1")));
    for (const c of clients) c.release();
  };

  try {
    if (appending) {
      const store = emmett.getPostgreSQLEventStore(url, {
        schema: { autoMigration: "None" },
        connectionOptions: { pooled: true, pool },
      });
      const batched = mode !== "append-single";
      const size = batched ? w.batch : 1;
      const appends = Math.ceil(n / size);
      const appenders = mode === "fill" ? 1 : w.concurrency;
      await warm(appenders);
      const t0 = clock();
      await Promise.all(
        Array.from({ length: appenders }, async (_, j) => {
          for (let k = j; k < appends; k += appenders) {
            const from = k * size;
            const events = Array.from(
              { length: Math.min(size, n - from) },
              (_, x) => ({ type: TYPE, data: dataOf(from + x) }),
            );
            await store.appendToStream(streamOf(k), events);
          }
        }),
      );
      emit({ type: "result", ms: clock() - t0 });
      return;
    }

    const counter = readCounter(n);
    if (mode === "read-subscription") {
      const db = dumbo({ connectionString: url, pool });
      await warm(2);
      const consumer = emmett.postgreSQLEventStoreConsumer({
        connectionString: url,
        pool: db,
        pulling: { batchSize: w.readBatch, pullingFrequencyInMs: 0 },
        stopWhen: { noMessagesLeft: true },
      });
      consumer.reactor({
        processorId: "bench",
        startFrom: "BEGINNING",
        eachMessage: (message) => {
          counter.hit(message.metadata.globalPosition);
          return Promise.resolve();
        },
      });
      await consumer.start();
      await consumer.stop();
    } else if (mode === "read-raw") {
      const db = dumbo({ connectionString: url, pool });
      await warm(1);
      let after = 0n;
      while (counter.count < n) {
        const batch = await emmett.readMessagesBatch(db.execute, {
          after,
          batchSize: w.readBatch,
        });
        if (batch.messages.length === 0) {
          throw new Error(`caught up after ${counter.count} of ${n} events`);
        }
        for (const m of batch.messages) counter.hit(m.metadata.globalPosition);
        after = batch.currentGlobalPosition;
      }
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
    emit(counter.result());
  } finally {
    await pool.end();
  }
});

/** Counts handler calls of a read; every event must come exactly once. */
function readCounter(n) {
  const seen = new Set();
  let first = 0;
  let last = 0;
  return {
    hit(position) {
      const at = clock();
      const key = String(position);
      if (seen.has(key)) throw new Error(`position ${key} delivered twice`);
      seen.add(key);
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
