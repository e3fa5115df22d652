/**
 * A normal shutdown is quiet: whether the signal reaches only the dev server
 * or, as from a terminal's Ctrl-C or a supervisor, the whole process group,
 * the log says it stopped, not that every function crashed.
 */
import assert from "node:assert/strict";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { alive, descendants, killTree, spawnDev } from "./support/dev_process.ts";
import { fixtureArgs, portIsFree, tempDir } from "./support/helpers.ts";

async function within<T>(what: string, promise: Promise<T>, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const CASES: { signal: Deno.Signal; group: boolean; who: string }[] = [
  { signal: "SIGINT", group: true, who: "Ctrl-C in a terminal" },
  { signal: "SIGTERM", group: true, who: "a supervisor stopping the group" },
  { signal: "SIGTERM", group: false, who: "kill <dev pid>" },
];

for (const { signal, group, who } of CASES) {
  Deno.test(`shutdown: ${signal} from ${who} logs no crash and leaves nothing`, async () => {
    await using db = await freshDatabase();
    await using dir = await tempDir("local-shutdown-");
    const port = freePort();
    const dev = spawnDev(
      [...fixtureArgs(dir.path, port), "--no-cron", "--no-watch"],
      { SUPABASE_DB_URL: db.url },
      { detached: true },
    );
    try {
      await dev.ready;
      // A function that served a request is as "ready" as can be.
      const res = await fetch(`http://127.0.0.1:${port}/functions/v1/crashy`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const tree = await descendants(dev.child.pid);
      if (group) Deno.kill(-dev.child.pid, signal);
      else Deno.kill(tree[0]!, signal);
      await within("the dev server's output to end", dev.ended);
      const stopping = dev.lines.findIndex((l) => /: stopping$/.test(l));
      assert.ok(stopping >= 0, dev.lines.join("\n"));
      const after = dev.lines.slice(stopping);
      assert.ok(after.some((l) => / stopped in [\d.]+ s$/.test(l)), after.join("\n"));
      assert.deepEqual(after.filter((l) => /crashed|exited|failed/.test(l)), [], after.join("\n"));
      assert.ok(portIsFree(port));
      for (const pid of tree) assert.equal(await alive(pid), false, `pid ${pid} left running`);
    } finally {
      await killTree(dev);
    }
  });
}
