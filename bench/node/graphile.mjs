// bench:queue child for graphile-worker, under Node (its own runtime).
// Argument: {"url", "mode": "setup"|"enqueue"|"drain", "n", "chunk", "settings"}.
// - setup: runs graphile-worker's migrations (template database).
// - enqueue: WorkerUtils.addJobs (its batch API, the add_jobs SQL function) in
//   chunks, timed after the connection is open.
// - drain: a pg Pool of settings.maxPoolSize (a few connections opened first),
//   ready, then on `go` run() with the given preset; on `stop` the runner stops.
//   settings = { concurrentJobs, maxPoolSize, localQueueSize,
//   completeJobBatchDelay, failJobBatchDelay, preparedStatements }.
import { clock, commands, config, emit, handlerCounter, load, runChild } from "./protocol.mjs";

const { default: pg } = await load("pg");
const { Logger, makeWorkerUtils, run, runMigrations } = await load("graphile-worker");

const silent = new Logger(() => () => {});

runChild(async () => {
  const { url, mode, n, chunk, settings: s = {} } = config();
  if (mode === "setup") {
    await runMigrations({ connectionString: url, logger: silent });
    emit({ type: "result" });
    return;
  }
  if (mode === "enqueue") {
    const utils = await makeWorkerUtils({ connectionString: url, logger: silent });
    await utils.withPgClient((c) => c.query("select 1"));
    const t0 = clock();
    for (let i = 0; i < n; i += chunk) {
      const k = Math.min(chunk, n - i);
      await utils.addJobs(
        Array.from({ length: k }, (_, j) => ({ identifier: "noop", payload: { i: i + j } })),
      );
    }
    emit({ type: "result", ms: clock() - t0 });
    await utils.release();
    return;
  }
  const pool = new pg.Pool({ connectionString: url, max: s.maxPoolSize });
  pool.on("error", () => {});
  const warm = await Promise.all(
    Array.from({ length: Math.min(4, s.maxPoolSize) }, () => pool.connect()),
  );
  for (const c of warm) c.release();
  const counter = handlerCounter();
  const cmd = commands();
  emit({ type: "ready" });
  await cmd.next("go");
  const runner = await run({
    pgPool: pool,
    noHandleSignals: true,
    logger: silent,
    taskList: { noop: () => counter.hit() },
    preset: {
      worker: {
        concurrentJobs: s.concurrentJobs,
        maxPoolSize: s.maxPoolSize,
        pollInterval: 1000,
        preparedStatements: s.preparedStatements,
        localQueue: s.localQueueSize > 0 ? { size: s.localQueueSize } : undefined,
        completeJobBatchDelay: s.completeJobBatchDelay,
        failJobBatchDelay: s.failJobBatchDelay,
      },
    },
  });
  await cmd.next("stop");
  await runner.stop();
  counter.finish();
  await pool.end();
});
