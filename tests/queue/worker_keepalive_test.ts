/**
 * Keep-alive (docs/queue.md, "Surviving the platform"): when no worker is
 * running, because the last drain found the queue empty and ended, or because
 * the queue-worker process itself was killed, the schedule starts one. Under
 * `deno task dev` the local cron calls queue-worker every 5 s, like the pg_cron
 * migration, so the worst case from enqueue to start is about one interval.
 *
 * Measured, not asserted: each sample enqueues a `webhook.deliver` job right
 * after a cron run ended (the moment the next run is furthest away) and times it
 * to the delivery at a loopback sink; the last sample first SIGKILLs the
 * queue-worker process, so the next run also pays a cold start. The bound only
 * catches a broken schedule.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { descendants, killTree, spawnDev } from "../local/support/dev_process.ts";
import { tempDir } from "../local/support/helpers.ts";

const CRON_LINE = /cron: queue-worker \d+ in \d+ ms/;
/** Only ever fails the test. */
const DEADLINE_MS = 90_000;

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>) {
  const deadline = Date.now() + DEADLINE_MS;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The pid of the process serving `name`, found by its command line. */
async function functionPid(root: number, name: string): Promise<number | undefined> {
  for (const pid of await descendants(root)) {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (cmd.includes(`/${name}/`)) return pid;
  }
  return undefined;
}

Deno.test("keep-alive: with every worker gone, the local cron starts one within an interval", async () => {
  await using db = await freshDatabase();
  await using dir = await tempDir("keepalive-");
  const deliveredAt: number[] = [];
  const sink = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    deliveredAt.push(Date.now());
    await req.body?.cancel();
    return new Response(null, { status: 204 });
  });
  await using _sink = { [Symbol.asyncDispose]: () => sink.shutdown() };
  const envFile = join(dir.path, "functions.env");
  await Deno.writeTextFile(envFile, "QUEUE_WEBHOOK_ALLOW_HOSTS=127.0.0.1\n");
  const dev = spawnDev([
    "--data-dir",
    dir.path,
    "--port",
    String(freePort()),
    "--env-file",
    envFile,
    "--no-watch",
    "--verbose",
  ], { SUPABASE_DB_URL: db.url });
  const url = `http://127.0.0.1:${sink.addr.port}/hook`;
  const samples: { delayMs: number; killed: boolean }[] = [];
  try {
    await dev.ready;
    for (const kill of [false, false, true]) {
      // A run has just ended: nothing drains until the next one.
      const seen = dev.lines.length;
      await waitFor(
        "a cron run to end",
        () => dev.lines.slice(seen).some((l) => CRON_LINE.test(l)) ? true : undefined,
      );
      if (kill) {
        const pid = await waitFor(
          "the queue-worker process",
          () => functionPid(dev.child.pid, "queue-worker"),
        );
        Deno.kill(pid, "SIGKILL");
      }
      const delivered = deliveredAt.length;
      const enqueuedAt = Date.now();
      await db.sql`select queue.enqueue('webhook.deliver', ${db.sql.json({ url })})`;
      const at = await waitFor("the delivery", () => deliveredAt[delivered]);
      samples.push({ delayMs: at - enqueuedAt, killed: kill });
    }
  } finally {
    await killTree(dev);
  }
  console.log(
    "enqueue -> start with no worker running (local cron every 5 s): " +
      samples.map((s) => `${s.delayMs} ms${s.killed ? " (queue-worker SIGKILLed)" : ""}`)
        .join(", ") +
      `; worst ${Math.max(...samples.map((s) => s.delayMs))} ms`,
  );
  for (const s of samples) {
    assert.ok(s.delayMs < 5_000 + 25_000, `started ${s.delayMs} ms after enqueue`);
  }
});
