/**
 * The local scheduler: `deno task dev` calls queue-worker every interval with
 * the `cron` secret key and logs each run's summary; `--env-file` values reach
 * the functions. Uses the fixture project, whose queue-worker stands in for
 * the real one and delivers to a sink named in the env file.
 *
 * The last test runs the project's real queue-worker: a `webhook.deliver` job
 * enqueued in SQL reaches a loopback sink through the local cron (loopback
 * allowed by QUEUE_WEBHOOK_ALLOW_HOSTS).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { alive, descendants, killTree, spawnDev } from "./support/dev_process.ts";
import { eventually, fixtureArgs, jsonSink, portIsFree, tempDir } from "./support/helpers.ts";
import { parseDevFlags, QUEUE_WORKER_INTERVAL_SECONDS } from "../../local/cli/mod.ts";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { startStack } from "../../local/stack.ts";

Deno.test("cron: queue-worker is called with the cron key on the interval", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir("local-cron-");
  await using sink = jsonSink(200);
  const deliveries = sink.received;
  const envFile = join(dir.path, "functions.env");
  await Deno.writeTextFile(envFile, `SINK_URL=${sink.url}\n`);
  const port = freePort();
  const dev = spawnDev([
    ...fixtureArgs(dir.path, port),
    "--env-file",
    envFile,
    "--cron-interval",
    "0.5",
  ], { SUPABASE_DB_URL: db.url });
  try {
    await dev.ready;
    await eventually("two deliveries", () => (deliveries.length >= 2 ? true : undefined));
    await eventually(
      "a logged run summary",
      () =>
        dev.lines.some((l) => /cron: queue-worker 200 in \d+ ms: claimed=1 completed=1/.test(l))
          ? true
          : undefined,
    );
    assert.deepEqual(deliveries.slice(0, 2), [{ run: 1 }, { run: 2 }], "runs never overlap");
    const tree = await descendants(dev.child.pid);
    Deno.kill(tree[0]!, "SIGTERM");
    assert.equal((await dev.child.status).code, 0);
    assert.ok(portIsFree(port));
    for (const pid of tree) assert.equal(await alive(pid), false, `pid ${pid} left running`);
  } finally {
    await killTree(dev);
  }
});

Deno.test("cron: --no-cron never calls queue-worker", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir("local-cron-");
  await using controlDir = await tempDir("local-cron-control-");
  await using sink = jsonSink(200);
  await using controlSink = jsonSink(200);
  const start = async (path: string, url: string, extra: string[]) => {
    const envFile = join(path, "functions.env");
    await Deno.writeTextFile(envFile, `SINK_URL=${url}\n`);
    const args = [...fixtureArgs(path, freePort()), "--env-file", envFile, ...extra];
    return spawnDev([...args, "--cron-interval", "0.2"], { SUPABASE_DB_URL: db.url });
  };
  const dev = await start(dir.path, sink.url, ["--no-cron"]);
  let control: Awaited<ReturnType<typeof start>> | undefined;
  try {
    await dev.ready;
    // A control stack started after it, with cron on: once the control has
    // delivered three times, several intervals have passed on this machine at
    // its present speed, rather than a guessed one second.
    control = await start(controlDir.path, controlSink.url, []);
    await control.ready;
    await eventually("three control runs", () => controlSink.received.length >= 3 || undefined);
    assert.equal(sink.received.length, 0);
    assert.ok(!dev.lines.some((l) => l.includes("cron:")));
  } finally {
    await killTree(dev);
    if (control) await killTree(control);
  }
});

Deno.test("cron: the local interval is the pg_cron migration's", async () => {
  const migrations = join(PROJECT_ROOT, "supabase", "migrations");
  let schedule: string | undefined;
  for await (const e of Deno.readDir(migrations)) {
    const text = await Deno.readTextFile(join(migrations, e.name));
    schedule ??= /cron\.schedule\(\s*'queue-worker',\s*'(\d+) seconds'/.exec(text)?.[1];
  }
  assert.equal(Number(schedule), QUEUE_WORKER_INTERVAL_SECONDS);
});

Deno.test("cron: a webhook.deliver job reaches its target through the real queue-worker", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir("local-cron-real-");
  await using sink = jsonSink();
  const received = sink.received;
  const envFile = join(dir.path, "functions.env");
  await Deno.writeTextFile(envFile, "QUEUE_WEBHOOK_ALLOW_HOSTS=127.0.0.1\n");
  const port = freePort();
  const dev = spawnDev([
    "--data-dir",
    dir.path,
    "--port",
    String(port),
    "--env-file",
    envFile,
    "--cron-interval",
    "0.5",
    "--no-watch",
  ], { SUPABASE_DB_URL: db.url });
  try {
    await dev.ready;
    const url = sink.url;
    await db.sql`select queue.enqueue('webhook.deliver',
      ${db.sql.json({ url, body: { hello: "from the queue" } })})`;
    await eventually("the webhook delivered", () => (received.length >= 1 ? true : undefined));
    assert.deepEqual(received[0], { hello: "from the queue" });
    await eventually("the job left the queue", async () => {
      const [row] = await db.sql`select count(*)::int as n from queue.jobs`;
      return row!.n === 0 ? true : undefined;
    });
    const [dead] = await db.sql`select count(*)::int as n from queue.dead_letters`;
    assert.equal(dead!.n, 0);
  } finally {
    await killTree(dev);
  }
  assert.ok(portIsFree(port));
});

Deno.test("cron: idle runs log only at debug; a run that works or fails logs at info", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir("local-cron-quiet-");
  await using sink = jsonSink();
  const envFile = join(dir.path, "functions.env");
  await Deno.writeTextFile(envFile, "QUEUE_WEBHOOK_ALLOW_HOSTS=127.0.0.1\n");
  const options = parseDevFlags([
    "--data-dir",
    dir.path,
    "--port",
    String(freePort()),
    "--env-file",
    envFile,
    "--cron-interval",
    "0.2",
    "--no-watch",
  ], (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined));
  const info: string[] = [];
  const debug: string[] = [];
  const stack = await startStack(options, {
    log: (line) => info.push(line),
    debug: (line) => debug.push(line),
    hostEnv: (name) => Deno.env.get(name),
  });
  const cronLines = (lines: string[]) => lines.filter((l) => l.startsWith("cron: "));
  try {
    const readyAt = info.length;
    await eventually(
      "three idle runs",
      () => cronLines(debug).length >= 3 ? true : undefined,
    );
    // Everything an idle run causes (the cron line, the gateway's access line, the
    // function's own lines) went to debug, none to info.
    assert.deepEqual(info.slice(readyAt), []);
    const idleRun = /^cron: queue-worker 200 in \d+ ms: claimed=0/.exec(cronLines(debug)[0]!);
    assert.ok(idleRun, cronLines(debug)[0]);
    assert.ok(debug.some((l) => l.startsWith("POST /functions/v1/queue-worker 200")));
    assert.ok(
      debug.some((l) => l.startsWith("[queue-worker] ") && l.includes('"requestId":"cron-')),
    );

    await db.sql`select queue.enqueue('webhook.deliver',
      ${db.sql.json({ url: sink.url, body: { n: 1 } })})`;
    const busy = await eventually(
      "a run that did work, at info",
      () => cronLines(info).find((l) => /^cron: queue-worker 200 in \d+ ms: claimed=1/.test(l)),
    );
    assert.match(busy, /completed=1/);
    assert.deepEqual(sink.received, [{ n: 1 }]);
    const id = await eventually(
      "the busy run's own lines at info",
      () => info.find((l) => l.startsWith("[queue-worker] ") && l.includes('"claimed":1')),
    );
    assert.match(id, /"requestId":"cron-/);

    // A run that fails is loud too: the worker cannot reach its queue.
    await db.sql`drop schema queue cascade`;
    const failed = await eventually(
      "a failed run, at info",
      () => cronLines(info).find((l) => /^cron: queue-worker [45]\d\d /.test(l)),
    );
    assert.ok(failed);
  } finally {
    await stack.stop();
  }
});
