/**
 * The hosted runtime's limits under `deno task dev`, each proven with a small
 * fixture function (tests/fixtures/limits_project) and a low limit written
 * into a copy of its config.toml: memory (sampled external memory and V8's own
 * heap cap), the worker's wall clock (beforeunload near it, a new worker for new
 * requests, cut-off work at the end), the request idle timeout and CPU time
 * per request (enforced by the gateway, even against a synchronous loop). A
 * request cut by a limit gets the platform's answer: 546, WORKER_RESOURCE_LIMIT.
 * Every wait is on the event itself, with a generous deadline.
 */
import assert from "node:assert/strict";
import { parseProjectConfig, PLATFORM_LIMITS } from "../../local/project/mod.ts";
import { fixtureCopy, startFixtureStack } from "./support/fixture_stack.ts";

/** Asserts the platform's answer for a worker ended by a limit, naming `limit`. */
async function assertWorkerLimit(res: Response, limit: RegExp): Promise<void> {
  const body = await res.json();
  assert.equal(res.status, 546, JSON.stringify(body));
  assert.equal(res.headers.get("sb-error-code"), "WORKER_RESOURCE_LIMIT");
  assert.equal(body.code, "worker_resource_limit");
  assert.match(body.detail, limit);
}

/** A copy of the limits fixture with `[local.limits]` set to `limits`. */
const limitsProject = (limits: string) =>
  fixtureCopy("limits_project", ["memory", "cpu", "events"], `[local.limits]\n${limits}`);

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
    "external memory, sampled: beforeunload, then the limit line, then 546",
    async () => {
      const res = await fetch(`${s.fn}/memory?mode=external`);
      await assertWorkerLimit(res, /exceeded the memory limit .*limit "memory"/);
      const limit = await s.waitForLine(/\[memory\] function "memory" exceeded the memory limit/);
      assert.match(limit, /limit 48 MB\): worker ended/);
      const before = s.logs.indexOf(`[memory] event beforeunload {"reason":"memory"}`);
      assert.ok(before >= 0 && before < s.logs.indexOf(limit), s.logs.join("\n"));
    },
  );
  await t.step("heap filled synchronously: V8's cap ends it, one clear line", async () => {
    const res = await fetch(`${s.fn}/memory?mode=heap`);
    await assertWorkerLimit(res, /V8 heap capped at 48 MB/);
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
    await assertWorkerLimit(res, /wall-clock limit .*limit "wall_clock"/);
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

Deno.test("limits: a synchronous busy loop past cpu_ms is ended by the gateway (546, cpu)", async (t) => {
  await using project = await limitsProject("cpu_ms = 300");
  await using s = await startFixtureStack(project.path);
  const worker = async (query: string) => {
    const res = await fetch(`${s.fn}/cpu?${query}`);
    assert.equal(res.status, 200, s.logs.slice(-10).join("\n"));
    return (await res.json()).worker as string;
  };
  const first = await worker("ms=0");
  await t.step("a request under the limit is served and the worker kept", async () => {
    assert.equal(await worker("ms=30"), first);
  });
  await t.step(
    "while(true){}: 546 WORKER_RESOURCE_LIMIT and one line naming the limit",
    async () => {
      const res = await fetch(`${s.fn}/cpu?loop=sync`);
      await assertWorkerLimit(res, /exceeded the CPU time limit .*limit "cpu"/);
      const line = await s.waitForLine(/\[cpu\] function "cpu" exceeded the CPU time limit/);
      assert.match(
        line,
        /\(GET \/cpu used \d+ ms of CPU, limit 300 ms per request\): worker ended with reason "cpu"/,
      );
      assert.equal(s.logs.filter((l) => /exceeded the CPU time limit/.test(l)).length, 1);
    },
  );
  await t.step("the next request is served by a fresh worker", async () => {
    assert.notEqual(await worker("ms=0"), first);
  });
});

Deno.test("limits: a worker that still yields gets beforeunload (cpu) before the CPU limit ends it", async () => {
  await using project = await limitsProject("cpu_ms = 300");
  await using s = await startFixtureStack(project.path);
  const res = await fetch(`${s.fn}/cpu?loop=yielding`);
  await assertWorkerLimit(res, /exceeded the CPU time limit/);
  const limit = await s.waitForLine(/\[cpu\] function "cpu" exceeded the CPU time limit/);
  const before = s.logs.indexOf(`[cpu] event beforeunload {"reason":"cpu"}`);
  assert.ok(before >= 0 && before < s.logs.indexOf(limit), s.logs.join("\n"));
});
