// bench:workflows child for DBOS Transact (@dbos-inc/dbos-sdk), under Node (its own runtime).
// Argument: {"url", "mode", "n", "settings"}; the workflow is "noop3": three no-op steps
// (DBOS.runStep, each checkpointed), the bench's counter hit in every step.
// - setup: DBOS.migrate (its system tables, in the template database).
// - enqueue: DBOSClient.enqueue of n noop3 workflows onto queue "bench", settings.lanes
//   enqueues at a time.
// - queue: DBOS.launch with queue "bench" registered (settings.workerConcurrency,
//   settings.pollMs = minPollingIntervalMs, settings.poolSize); it dequeues what
//   `enqueue` left. Ready once launched (dispatch has begun: the parent times first to
//   last step, not launch).
// - direct: DBOS.launch, ready, then on `go` n direct invocations of noop3 (the awaited
//   workflow function), settings.lanes at a time.
// - latency-queue / latency-direct: n single workflows, one at a time, each timed from
//   the start call (DBOS.startWorkflow onto the queue / directly) to its first step,
//   after one untimed run (so the dispatcher has picked the queue up).
import { clock, commands, config, emit, handlerCounter, load, runChild } from "./protocol.mjs";

const { DBOS, DBOSClient } = await load("@dbos-inc/dbos-sdk");

const APP = "bench";
const QUEUE = "bench";
const VERSION = "bench-1";

/** The counter (or latency probe) every step calls; set per mode. */
let onStep = () => {};
const noopStep = () => {
  onStep();
  return Promise.resolve();
};
async function noop3Impl(i) {
  await DBOS.runStep(noopStep, { name: "a" });
  await DBOS.runStep(noopStep, { name: "b" });
  await DBOS.runStep(noopStep, { name: "c" });
  return i;
}

function configure(url, s) {
  DBOS.setConfig({
    name: APP,
    systemDatabaseUrl: url,
    systemDatabasePoolSize: s.poolSize ?? 10,
    applicationVersion: VERSION,
    logLevel: "error",
    runMigrations: false,
  });
}

async function lanes(n, k, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, k) }, async () => {
    while (next < n) await fn(next++);
  }));
}

runChild(async () => {
  const { url, mode, n, settings: s = {} } = config();
  if (mode === "setup") {
    await DBOS.migrate(url);
    emit({ type: "result" });
    return;
  }
  if (mode === "enqueue") {
    const client = await DBOSClient.create({
      systemDatabaseUrl: url,
      applicationName: APP,
      systemDatabasePoolSize: s.lanes ?? 10,
    });
    const t0 = clock();
    await lanes(n, s.lanes ?? 10, (i) =>
      client.enqueue({
        queueName: QUEUE,
        workflowName: "noop3",
        appVersion: VERSION,
      }, i));
    emit({ type: "result", ms: clock() - t0 });
    await client.destroy();
    return;
  }
  const noop3 = DBOS.registerWorkflow(noop3Impl, { name: "noop3" });
  configure(url, s);
  // DBOS.registerQueue needs a launched DBOS; its dispatcher picks the queue up.
  const launch = async () => {
    await DBOS.launch();
    if (mode === "queue" || mode === "latency-queue") {
      await DBOS.registerQueue(QUEUE, {
        workerConcurrency: s.workerConcurrency,
        minPollingIntervalMs: s.pollMs,
        onConflict: "always_update",
      });
    }
  };
  const cmd = commands();
  if (mode === "latency-queue" || mode === "latency-direct") {
    await launch();
    const samples = [];
    // One untimed run first: the dispatcher has picked the queue up, connections are open.
    for (let k = -1; k < n; k++) {
      let hit;
      let done;
      const first = new Promise((r) => (hit = r));
      const third = new Promise((r) => (done = r));
      let steps = 0;
      // The third step ends the run (getResult of a queued run polls the database).
      onStep = () => {
        if (++steps === 1) hit(clock());
        if (steps === 3) done();
      };
      const t0 = clock();
      if (mode === "latency-queue") {
        await DBOS.startWorkflow(noop3, { queueName: QUEUE })(k);
      } else await DBOS.startWorkflow(noop3)(k);
      const at = await first;
      if (k >= 0) samples.push(at - t0);
      await third;
      await new Promise((r) => setTimeout(r, 5));
    }
    emit({ type: "result", samples });
    await DBOS.shutdown();
    return;
  }
  const counter = handlerCounter();
  onStep = counter.hit;
  if (mode === "queue") {
    await launch();
    emit({ type: "ready" });
    await cmd.next("stop");
    counter.finish();
    await DBOS.shutdown();
    return;
  }
  if (mode === "direct") {
    await launch();
    emit({ type: "ready" });
    await cmd.next("go");
    await lanes(n, s.lanes ?? 10, (i) => noop3(i));
    await cmd.next("stop");
    counter.finish();
    await DBOS.shutdown();
    return;
  }
  throw new Error(`unknown mode ${mode}`);
});
