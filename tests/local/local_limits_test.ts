/**
 * The hosted runtime's limits under `deno task dev`, each proven with a small
 * fixture function (tests/fixtures/limits_project) and a low limit written
 * into a copy of its config.toml: memory (sampled external memory and V8's own
 * heap cap), the worker's wall clock (beforeunload near it, a new worker for new
 * requests, cut-off work at the end), the request idle timeout and CPU time
 * per request. Every wait is on the event itself, with a generous deadline.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseProjectConfig, PLATFORM_LIMITS } from "../../local/project/mod.ts";
import { fixtureProject, startFixtureStack } from "./support/fixture_stack.ts";
import { tempDir } from "./support/helpers.ts";

/** A copy of the limits fixture with `[local.limits]` set to `limits`. */
async function limitsProject(limits: string): Promise<AsyncDisposable & { path: string }> {
  const dir = await tempDir("local-limits-");
  const from = join(fixtureProject("limits_project"), "supabase");
  const to = join(dir.path, "supabase");
  await Deno.mkdir(join(to, "functions"), { recursive: true });
  for (const fn of ["memory", "cpu", "events"]) {
    await Deno.mkdir(join(to, "functions", fn));
    await Deno.copyFile(
      join(from, "functions", fn, "index.ts"),
      join(to, "functions", fn, "index.ts"),
    );
  }
  const config = await Deno.readTextFile(join(from, "config.toml"));
  await Deno.writeTextFile(join(to, "config.toml"), `${config}\n[local.limits]\n${limits}\n`);
  return dir;
}

Deno.test("limits: [local.limits] parses with the platform's defaults and refuses bad values", () => {
  assert.deepEqual(parseProjectConfig("", "c.toml").limits, PLATFORM_LIMITS);
  assert.deepEqual(PLATFORM_LIMITS, {
    memoryMb: 256,
    wallClockMs: 150_000,
    cpuMsPerRequest: 2000,
    requestIdleTimeoutMs: 150_000,
  });
  const raised = parseProjectConfig(
    `[local.limits]\nmemory_mb = 512\nwall_clock_s = 400\ncpu_ms = 5000\nrequest_idle_timeout_s = 30\n`,
    "c.toml",
  ).limits;
  assert.deepEqual(raised, {
    memoryMb: 512,
    wallClockMs: 400_000,
    cpuMsPerRequest: 5000,
    requestIdleTimeoutMs: 30_000,
  });
  const bad: [string, RegExp][] = [
    [`memory_mb = 0`, /\[local\.limits\] memory_mb must be a number between 16 and 16384/],
    [`memory_mb = "256"`, /memory_mb must be a number/],
    [`wall_clock_s = -1`, /wall_clock_s must be a number/],
    [`cpu = 1`, /\[local\.limits\] has no key "cpu"/],
  ];
  for (const [line, error] of bad) {
    assert.throws(() => parseProjectConfig(`[local.limits]\n${line}\n`, "c.toml"), error, line);
  }
});

Deno.test("limits: memory past the limit ends the worker, after beforeunload (memory)", async (t) => {
  await using project = await limitsProject("memory_mb = 48");
  await using s = await startFixtureStack(project.path);
  await t.step(
    "external memory, sampled: beforeunload, then the limit line, then 502",
    async () => {
      const res = await fetch(`${s.fn}/memory?mode=external`);
      await res.body?.cancel();
      assert.equal(res.status, 502);
      const limit = await s.waitForLine(/\[memory\] function "memory" exceeded the memory limit/);
      assert.match(limit, /limit 48 MB\): worker ended/);
      const before = s.logs.indexOf(`[memory] event beforeunload {"reason":"memory"}`);
      assert.ok(before >= 0 && before < s.logs.indexOf(limit), s.logs.join("\n"));
    },
  );
  await t.step("heap filled synchronously: V8's cap ends it, one clear line", async () => {
    const res = await fetch(`${s.fn}/memory?mode=heap`);
    await res.body?.cancel();
    assert.equal(res.status, 502);
    await s.waitForLine(/exceeded the memory limit \(V8 heap capped at 48 MB\)/);
    assert.ok(!s.logs.some((l) => /Last few GCs|C stack trace/.test(l)), "no V8 dump");
  });
});

Deno.test("limits: the wall clock retires a worker (beforeunload wall_clock) and cuts work past it", async (t) => {
  await using project = await limitsProject("wall_clock_s = 3");
  await using s = await startFixtureStack(project.path);
  await t.step(
    "idle: beforeunload, unload, no noise; the next request gets a new worker",
    async () => {
      const first = s.stack.pool.current("events")!.pid;
      await s.waitForLine(/^\[events\] event beforeunload \{"reason":"wall_clock"\}$/);
      await s.waitForLine(/^\[events\] event unload$/);
      const res = await fetch(`${s.fn}/events`);
      assert.equal(await res.text(), "ok");
      assert.notEqual(s.stack.pool.current("events")!.pid, first);
      assert.ok(!s.logs.some((l) => /wall-clock limit/.test(l)), "an idle worker ends quietly");
    },
  );
  await t.step("busy past the limit: the request is cut, with one line saying why", async () => {
    const res = await fetch(`${s.fn}/events?sleep=60000`);
    await res.body?.cancel();
    assert.equal(res.status, 502);
    await s.waitForLine(/reached the wall-clock limit \(3 s per worker\): worker ended with work/);
  });
});

Deno.test("limits: request_idle_timeout_s from config.toml answers 504", async () => {
  await using project = await limitsProject("request_idle_timeout_s = 0.5");
  await using s = await startFixtureStack(project.path);
  const res = await fetch(`${s.fn}/events?sleep=30000`);
  const body = await res.json();
  assert.equal(res.status, 504);
  assert.equal(body.code, "function_timeout");
});

Deno.test("limits: CPU time per request is measured; past the limit a warning names it", async () => {
  await using project = await limitsProject("cpu_ms = 150");
  await using s = await startFixtureStack(project.path);
  const quick = await fetch(`${s.fn}/cpu?ms=0`);
  assert.equal(await quick.text(), "true");
  const slow = await fetch(`${s.fn}/cpu?ms=400`);
  assert.equal(await slow.text(), "true");
  const line = await s.waitForLine(/\[cpu\] function "cpu": GET \/cpu used \d+ ms of CPU/);
  assert.match(line, /over the hosted limit of 150 ms per request/);
  assert.equal(s.logs.filter((l) => /ms of CPU/.test(l)).length, 1, "only the slow request");
});
