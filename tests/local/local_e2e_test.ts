/**
 * End-to-end proof of `deno task dev`: started as a child process on free
 * ports with a temp data dir, it serves this project's functions (the real
 * `api`) on an embedded Postgres, survives Postgres being killed, and stops
 * leaving nothing behind. It also measures start-up, first run and warm.
 * The scheduler is proven in local_cron_test.ts (fixture queue-worker).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freePort } from "../_harness/database.ts";
import { alive, descendants, type DevProcess, killTree, spawnDev } from "./support/dev_process.ts";
import { eventually, portIsFree, tempDir } from "./support/helpers.ts";

async function token(dataDir: string, sub: string, email: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "token", "--data-dir", dataDir, "--sub", sub, "--email", email],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

async function stopDev(dev: DevProcess, signal: Deno.Signal, ports: number[]): Promise<void> {
  const tree = await descendants(dev.child.pid);
  const devPid = tree[0] ?? dev.child.pid;
  Deno.kill(devPid, signal);
  const status = await dev.child.status;
  assert.equal(status.code, 0, dev.lines.slice(-20).join("\n"));
  for (const port of ports) assert.ok(portIsFree(port), `port ${port} still in use`);
  for (const pid of tree) assert.equal(await alive(pid), false, `pid ${pid} left running`);
}

Deno.test("e2e: deno task dev serves the project, recovers and stops clean", async (t) => {
  await using dir = await tempDir("local-e2e-");
  const dataDir = join(dir.path, "state");
  const port = freePort();
  const dbPort = freePort();
  const args = [
    "--data-dir",
    dataDir,
    "--port",
    String(port),
    "--db-port",
    String(dbPort),
    "--no-cron",
    // The outage lasts as long as the test holds the database port (see below);
    // this delay only has to outlast the few milliseconds between kill and bind.
    "--db-restart-delay-ms",
    "5000",
  ];
  const fn = `http://127.0.0.1:${port}/functions/v1`;
  const api = async (action: string, payload: unknown, headers: Record<string, string>) => {
    const res = await fetch(`${fn}/api`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ action, payload }),
    });
    return { status: res.status, body: await res.json() };
  };

  const first = spawnDev(args);
  try {
    const readyS = await first.ready;
    const spawnMs = await first.spawnToReadyMs;
    console.log(
      `first run: ready in ${readyS} s (spawn to ready ${(spawnMs / 1000).toFixed(2)} s)`,
    );
    assert.ok(first.lines.some((l) => / database: embedded Postgres on 127\.0\.0\.1:/.test(l)));
    assert.ok(first.lines.some((l) => / migrations: [1-9]\d* applied/.test(l)));
    assert.ok(first.lines.some((l) => / functions: api\b/.test(l)));
    // The banner follows the ready line.
    await eventually(
      "banner with curl",
      () => first.lines.some((l) => l.includes("curl -sS -X POST")) ? true : undefined,
    );
    const keys = JSON.parse(await Deno.readTextFile(join(dataDir, "keys.json")));

    await t.step("api echo with the publishable key", async () => {
      const r = await api("echo", { message: "hello" }, { apikey: keys.publishableKeys.default });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { data: { message: "hello" } });
    });

    const alice = crypto.randomUUID();
    const aliceToken = await token(dataDir, alice, "alice@example.com");
    const bobToken = await token(dataDir, crypto.randomUUID(), "bob@example.com");

    await t.step("api whoami with a token from deno task token", async () => {
      const r = await api("whoami", {}, { authorization: `Bearer ${aliceToken}` });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.data, {
        sub: alice,
        role: "authenticated",
        email: "alice@example.com",
        authMode: "user",
      });
    });

    await t.step("notes round trip under RLS", async () => {
      const created = await api("notes.create", { body: "alice's note" }, {
        authorization: `Bearer ${aliceToken}`,
      });
      assert.equal(created.status, 200);
      assert.equal(created.body.data.body, "alice's note");
      const mine = await api("notes.list", {}, { authorization: `Bearer ${aliceToken}` });
      assert.deepEqual(mine.body.data.map((n: { body: string }) => n.body), ["alice's note"]);
      const theirs = await api("notes.list", {}, { authorization: `Bearer ${bobToken}` });
      assert.deepEqual(theirs.body.data, [], "RLS hides alice's note from bob");
    });

    await t.step("Postgres killed: ready fails, DB requests 503, then recovery", async () => {
      const state = JSON.parse(await Deno.readTextFile(join(dataDir, "dev.json")));
      Deno.kill(state.postgresPid, "SIGKILL");
      // Holding the port keeps every restart failing until the outage has been
      // observed, instead of betting that the test observes it before a timer ends.
      let blocker: Deno.Listener | undefined;
      for (
        const deadline = Date.now() + 5_000;
        !blocker;
        await new Promise((r) => setTimeout(r, 1))
      ) {
        try {
          blocker = Deno.listen({ hostname: "127.0.0.1", port: dbPort });
        } catch (error) {
          if (!(error instanceof Deno.errors.AddrInUse) || Date.now() > deadline) throw error;
        }
      }
      try {
        await eventually("ready reports fail", async () => {
          const res = await fetch(`${fn}/api/ready`);
          const body = await res.json();
          return res.status === 503 && body.status === "fail" ? true : undefined;
        });
        const during = await api("notes.list", {}, { authorization: `Bearer ${aliceToken}` });
        assert.equal(during.status, 503);
        assert.equal(during.body.code, "database_unavailable");
      } finally {
        blocker.close();
      }
      await eventually("ready passes again", async () => {
        const res = await fetch(`${fn}/api/ready`);
        await res.body?.cancel();
        return res.status === 200 ? true : undefined;
      });
      const after = await api("notes.list", {}, { authorization: `Bearer ${aliceToken}` });
      assert.equal(after.status, 200);
      assert.equal(after.body.data.length, 1, "data survived the crash");
      const restarted = JSON.parse(await Deno.readTextFile(join(dataDir, "dev.json")));
      assert.notEqual(restarted.postgresPid, state.postgresPid);
    });

    await t.step("SIGINT stops everything: exit 0, ports free, no orphans", async () => {
      await stopDev(first, "SIGINT", [port, dbPort]);
    });
  } finally {
    await killTree(first);
  }

  await t.step("warm start (second run) and SIGTERM", async () => {
    const warm = spawnDev(args);
    try {
      const readyS = await warm.ready;
      const spawnMs = await warm.spawnToReadyMs;
      console.log(
        `warm start: ready in ${readyS} s (spawn to ready ${(spawnMs / 1000).toFixed(2)} s)`,
      );
      assert.ok(warm.lines.some((l) => / migrations: 0 applied/.test(l)));
      const res = await fetch(`${fn}/api/health`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await stopDev(warm, "SIGTERM", [port, dbPort]);
    } finally {
      await killTree(warm);
    }
  });
});
