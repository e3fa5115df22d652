/**
 * The CPU limit's parts without a stack: how CPU is attributed to concurrent
 * requests (CpuLedger, as fast-check properties and a table), when the watch
 * warns and ends a worker (CpuWatch, fed a scripted CPU clock), reading a real
 * process's CPU time from /proc, the gateway-to-worker command lines, and the
 * in-process fallback that only warns where /proc is missing.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import {
  type ChargedRequest,
  CpuLedger,
  CpuWatch,
  processCpuMs,
} from "../../local/functions/cpu_limit.ts";
import { type HostLimits, measureCpu } from "../../local/functions/host_limits.ts";
import { hostCommandLine, parseHostCommand } from "../../local/functions/host_runtime.ts";

/** One step of a ledger script: open a request, close one, or advance the CPU clock. */
type Step = { op: "open" } | { op: "close"; pick: number } | { op: "cpu"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ op: "open" as const }),
  fc.record({ op: fc.constant("close" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("cpu" as const), ms: fc.integer({ min: 0, max: 500 }) }),
);

Deno.test("cpu ledger: shares add up to the CPU used while requests were in flight", () => {
  fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
    const ledger = new CpuLedger();
    const all: ChargedRequest[] = [];
    const open: ChargedRequest[] = [];
    let total = 0;
    let busyMs = 0; // CPU spent while at least one request was open
    ledger.sample(total);
    for (const s of steps) {
      if (s.op === "open") {
        const r = ledger.open("r", total);
        all.push(r);
        open.push(r);
      } else if (s.op === "close" && open.length > 0) {
        const [r] = open.splice(s.pick % open.length, 1);
        ledger.close(r!, total);
      } else if (s.op === "cpu") {
        if (open.length > 0) busyMs += s.ms;
        total += s.ms;
        ledger.sample(total);
      }
    }
    const charged = all.reduce((sum, r) => sum + r.chargedMs, 0);
    assert.ok(Math.abs(charged - busyMs) < 1e-6, `${charged} vs ${busyMs}`);
    assert.ok(all.every((r) => r.chargedMs >= 0 && r.chargedMs <= busyMs + 1e-6));
  }));
});

/** A ledger script: open or close a named request, or let the process use CPU. */
type Event = ["open" | "close", string] | ["cpu", number];

Deno.test("cpu ledger: a request alone is charged all; overlapping ones split evenly", () => {
  const cases: [name: string, events: Event[], a: number, b: number][] = [
    ["a alone", [["open", "a"], ["cpu", 300], ["close", "a"]], 300, 0],
    ["a and b together", [["open", "a"], ["open", "b"], ["cpu", 300]], 150, 150],
    [
      "b joins, a leaves",
      [["open", "a"], ["cpu", 100], ["open", "b"], ["cpu", 100], ["close", "a"], ["cpu", 100]],
      150,
      150,
    ],
    ["CPU with nothing in flight is nobody's", [["cpu", 999], ["open", "a"], ["cpu", 10]], 10, 0],
  ];
  for (const [name, events, wantA, wantB] of cases) {
    const ledger = new CpuLedger();
    let total = 0;
    ledger.sample(total);
    const requests = new Map<string, ChargedRequest>();
    for (const event of events) {
      if (event[0] === "cpu") ledger.sample(total += event[1]);
      else if (event[0] === "open") requests.set(event[1], ledger.open(event[1], total));
      else ledger.close(requests.get(event[1])!, total);
    }
    assert.equal(requests.get("a")?.chargedMs ?? 0, wantA, name);
    assert.equal(requests.get("b")?.chargedMs ?? 0, wantB, name);
  }
});

/** A watch on a scripted CPU clock, with what it said. */
function scriptedWatch(limitMs: number) {
  const clock = { cpu: 0 };
  const said: string[] = [];
  const watch = new CpuWatch(1, limitMs, 0.9, {
    nearLimit: (r) => said.push(`near ${r.label} ${r.chargedMs}`),
    overLimit: (r) => said.push(`over ${r.label} ${r.chargedMs}`),
  }, () => clock.cpu);
  return { clock, said, watch };
}

Deno.test("cpu watch: beforeunload at 90%, the end at the limit once a tenth more was used", () => {
  const { clock, said, watch } = scriptedWatch(1000);
  try {
    watch.begin("GET /x");
    clock.cpu = 899;
    watch.check();
    assert.deepEqual(said, []);
    clock.cpu = 950;
    watch.check();
    assert.deepEqual(said, ["near GET /x 950"]);
    clock.cpu = 1000; // at the limit, but only 50 ms after the warning
    watch.check();
    assert.deepEqual(said, ["near GET /x 950"]);
    clock.cpu = 1050;
    watch.check();
    assert.deepEqual(said, ["near GET /x 950", "over GET /x 1050"]);
  } finally {
    watch.stop();
  }
});

Deno.test("cpu watch: a late sample far past the limit still warns before it ends", () => {
  const { clock, said, watch } = scriptedWatch(1000);
  try {
    watch.begin("GET /x");
    clock.cpu = 5000;
    watch.check();
    assert.deepEqual(said, ["near GET /x 5000"]);
    clock.cpu = 5100;
    watch.check();
    assert.deepEqual(said, ["near GET /x 5000", "over GET /x 5100"]);
  } finally {
    watch.stop();
  }
});

Deno.test("cpu watch: requests under the limit, one after another, are never ended", () => {
  const { clock, said, watch } = scriptedWatch(1000);
  try {
    for (let i = 0; i < 10; i++) {
      const end = watch.begin(`GET /${i}`);
      clock.cpu += 800;
      watch.check();
      end();
    }
    assert.deepEqual(said, []);
  } finally {
    watch.stop();
  }
});

Deno.test("cpu watch: nothing is sampled where the CPU time cannot be read", () => {
  const said: string[] = [];
  const watch = new CpuWatch(1, 10, 0.9, {
    nearLimit: () => said.push("near"),
    overLimit: () => said.push("over"),
  }, () => null);
  watch.begin("GET /x")();
  watch.stop();
  assert.deepEqual(said, []);
});

Deno.test("cpu time of a real process: /proc/<pid>/stat grows while it spins", async () => {
  // The child spins until it has used 300 ms of CPU time (progress, not wall time), then waits.
  const script = `import process from "node:process";
    const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
    while (cpu() < 300) {}
    await Deno.stdin.read(new Uint8Array(1));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const start = processCpuMs(child.pid);
    assert.notEqual(start, null, "this machine has /proc");
    let now = start!;
    while (now < 250) {
      await new Promise((r) => setTimeout(r, 20));
      now = processCpuMs(child.pid) ?? now;
    }
    assert.ok(now > start!);
    assert.equal(processCpuMs(2 ** 22 + 12345), null, "a pid that does not exist");
  } finally {
    await child.stdin.close();
    await child.status;
  }
});

Deno.test("host commands: every line round-trips; anything else is ignored", () => {
  for (const kind of ["beforeunload", "retire"] as const) {
    for (const reason of ["cpu", "memory", "wall_clock", "early_drop", "termination"] as const) {
      assert.deepEqual(parseHostCommand(hostCommandLine({ kind, reason })), { kind, reason });
    }
  }
  for (const line of ["", "retire", "retire nope", "stop cpu", "retire cpu extra", "RETIRE cpu"]) {
    assert.equal(parseHostCommand(line), null, line);
  }
});

Deno.test("cpu fallback (no /proc): the worker measures its own requests and warns", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  try {
    const limits: HostLimits = {
      memoryMb: 256,
      wallClockMs: 150_000,
      cpuMsPerRequest: 20,
      cpuEnforcedByGateway: false,
    };
    const handler = measureCpu("x", limits, () => {
      const start = performance.now();
      while (performance.now() - start < 60) { /* burn */ }
      return new Response("ok");
    });
    const res = await handler(new Request("http://x/x/slow"));
    assert.equal(await res.text(), "ok");
  } finally {
    console.error = original;
  }
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.match(errors[0]!, /GET \/x\/slow used \d+ ms of CPU, over the hosted limit of 20 ms/);
});
