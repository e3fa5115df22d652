/**
 * The local limits drive the real `queue-worker` the way the platform does
 * (docs/local-stack.md, "Worker events"): in a copy of this project with a
 * 4 s wall clock, a `webhook.deliver` job whose target never answers is still
 * running when the worker gets `beforeunload` (wall_clock). The worker must
 * hand it back without spending its attempt: the job allows ONE attempt, so it
 * can only be delivered a second time (by the next worker) if the first one was
 * not counted; a lease that ran out instead would dead-letter it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { killTree, spawnDev } from "./support/dev_process.ts";
import { eventually, tempDir } from "./support/helpers.ts";

/** A webhook target: the first delivery hangs until the test ends, later ones get 204. */
function hangingFirstSink() {
  let calls = 0;
  const release = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    calls++;
    await req.body?.cancel();
    if (calls === 1) {
      await release.promise;
      return new Response(null, { status: 503 });
    }
    return new Response(null, { status: 204 });
  });
  return {
    calls: () => calls,
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    [Symbol.asyncDispose]: async () => {
      release.resolve();
      await server.shutdown();
    },
  };
}

Deno.test("queue-worker under the local wall clock: beforeunload hands a running job back, attempt kept", async () => {
  await using dir = await tempDir("local-worker-limits-");
  const copy = await new Deno.Command("cp", {
    args: ["-r", join(PROJECT_ROOT, "supabase"), dir.path],
  }).output();
  assert.ok(copy.success, "cp -r supabase");
  await Deno.remove(join(dir.path, "supabase", ".temp"), { recursive: true }).catch(() => {});
  const config = join(dir.path, "supabase", "config.toml");
  await Deno.writeTextFile(config, "\n[local.limits]\nwall_clock_s = 4\n", { append: true });
  const envFile = join(dir.path, "functions.env");
  await Deno.writeTextFile(envFile, "QUEUE_WEBHOOK_ALLOW_HOSTS=127.0.0.1\n");
  await using db = await freshDatabase();
  await using sink = hangingFirstSink();
  const port = freePort();
  const dev = spawnDev([
    "--workdir",
    dir.path,
    "--data-dir",
    join(dir.path, "state"),
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
    await db.sql`select queue.enqueue('webhook.deliver',
      ${db.sql.json({ url: sink.url, body: { n: 1 } })}, max_attempts => 1)`;
    await eventually("the first delivery (it hangs)", () => sink.calls() >= 1 || undefined);
    await eventually("a second delivery, by the next worker", () => sink.calls() >= 2 || undefined);
    await eventually("the job done", async () => {
      const [row] = await db.sql`select count(*)::int as n from queue.jobs`;
      return row!.n === 0 || undefined;
    });
    const [dead] = await db.sql`select count(*)::int as n from queue.dead_letters`;
    assert.equal(dead!.n, 0, "the handed-back attempt was not spent");
  } finally {
    await killTree(dev);
  }
});
