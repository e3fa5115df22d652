// bench:queue child for pg-boss, under Node (its own runtime).
// Argument: {"url", "mode": "setup"|"enqueue"|"drain", "n", "chunk", "settings"}.
// - setup: start() (creates its schema) and createQueue("noop") (template database).
// - enqueue: insert() (its batch API) in chunks, timed after start().
// - drain: start(), ready, then on `go` work() with the given options; a batch
//   handler that returns completes its whole batch in one statement.
//   settings = { batchSize, localConcurrency, max (pool size) }.
// Maintenance (supervise) and cron (schedule) are off: less load on the database.
import { clock, commands, config, emit, handlerCounter, load, runChild } from "./protocol.mjs";

const { PgBoss } = await load("pg-boss");

runChild(async () => {
  const { url, mode, n, chunk, settings: s = {} } = config();
  const boss = new PgBoss({
    connectionString: url,
    max: s.max ?? 10,
    supervise: false,
    schedule: false,
  });
  boss.on("error", () => {});
  await boss.start();
  if (mode === "setup") {
    await boss.createQueue("noop");
    await boss.stop({ graceful: false, close: true });
    emit({ type: "result" });
    return;
  }
  if (mode === "enqueue") {
    const t0 = clock();
    for (let i = 0; i < n; i += chunk) {
      const k = Math.min(chunk, n - i);
      await boss.insert("noop", Array.from({ length: k }, (_, j) => ({ data: { i: i + j } })));
    }
    emit({ type: "result", ms: clock() - t0 });
    await boss.stop({ graceful: false, close: true });
    return;
  }
  const counter = handlerCounter();
  const cmd = commands();
  emit({ type: "ready" });
  await cmd.next("go");
  await boss.work("noop", {
    batchSize: s.batchSize,
    localConcurrency: s.localConcurrency,
    pollingIntervalSeconds: 0.5,
    burstWhenBatchFull: true,
  }, (jobs) => {
    counter.hits(jobs.length);
    return Promise.resolve();
  });
  await cmd.next("stop");
  await boss.stop({ graceful: true, close: true, timeout: 5000 });
  counter.finish();
});
