/**
 * `deno task bench:breaker`: per-call cost of a bare async call, this
 * project's breaker (closed, open), opossum and cockatiel (closed, open), all
 * in one run, interleaved round by round so machine noise hits every peer
 * alike; then the cost of one rate-limit decision against a local embedded
 * Postgres (p50/p99).
 *
 * Options: --rounds=N (default 9), --calls=N per round (default 200000),
 * --decisions=N (default 5000), --no-db (skip the rate-limit part).
 */
import { parseArgs } from "node:util";
import {
  circuitBreaker as cockatielBreaker,
  ConsecutiveBreaker,
  handleAll,
  timeout as cockatielTimeout,
  TimeoutStrategy,
  wrap,
} from "npm:cockatiel@4";
import Opossum from "npm:opossum@10";
import { CircuitBreaker } from "../supabase/functions/_shared/mod.ts";
import { benchRateLimit } from "./rate_limit_decision.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "9" },
    calls: { type: "string", default: "200000" },
    decisions: { type: "string", default: "5000" },
    "no-db": { type: "boolean", default: false },
  },
});
const ROUNDS = Number(values.rounds);
const CALLS = Number(values.calls);

type Call = () => Promise<unknown>;
// deno-lint-ignore require-await -- the baseline is exactly an async function doing nothing
const bare = async () => 1;
const failing = () => Promise.reject(new Error("down"));

/** Average µs per awaited call over `n` calls (errors swallowed, as a caller would). */
async function perCall(call: Call, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    try {
      await call();
    } catch { /* an open breaker rejects: that is what is measured */ }
  }
  return ((performance.now() - t0) * 1000) / n;
}

// Ours. Far-future openUntil keeps the open one open for the whole run.
const oursClosed = new CircuitBreaker({ key: "closed" });
const oursOpen = new CircuitBreaker({ key: "open" });
oursOpen.forceOpen(Date.now() + 3_600_000);

// opossum: a timeout per call is built in (default 10 s), like ours.
const opossumClosed = new Opossum(bare, { timeout: 10_000 });
const opossumOpen = new Opossum(bare, { timeout: 10_000 });
opossumOpen.open();

// cockatiel: the breaker alone (no timeout), and with a cooperative timeout,
// which is the same work ours does on every call.
const cockatielPolicy = () =>
  cockatielBreaker(handleAll, { halfOpenAfter: 3_600_000, breaker: new ConsecutiveBreaker(5) });
const cockatielClosed = cockatielPolicy();
const cockatielWithTimeout = wrap(
  cockatielTimeout(10_000, TimeoutStrategy.Cooperative),
  cockatielPolicy(),
);
const cockatielOpen = cockatielPolicy();
for (let i = 0; i < 5; i++) {
  try {
    await cockatielOpen.execute(failing);
  } catch { /* tripping it */ }
}

const cases: [string, Call][] = [
  ["bare async call", bare],
  ["ours closed (with timeout signal)", () => oursClosed.execute(bare)],
  ["ours open", () => oursOpen.execute(bare)],
  ["ours open, attempt() (result value)", () => oursOpen.attempt(bare)],
  ["opossum closed (with timeout)", () => opossumClosed.fire()],
  ["opossum open", () => opossumOpen.fire()],
  ["cockatiel closed (no timeout)", () => cockatielClosed.execute(bare)],
  ["cockatiel closed + timeout", () => cockatielWithTimeout.execute(bare)],
  ["cockatiel open", () => cockatielOpen.execute(bare)],
];

// Sanity: the open ones really reject, the closed ones really run.
for (const [name, call] of cases) {
  const rejected = await call().then((v) => v === oursOpen.openError, () => true);
  if (rejected !== name.includes("open")) throw new Error(`${name}: unexpected state`);
}

// The synchronous admission check alone, for callers that gate work themselves.
function tryAcquireCost(n: number): number {
  const t0 = performance.now();
  let refused = 0;
  for (let i = 0; i < n; i++) if (oursOpen.tryAcquire() < 0) refused++;
  if (refused !== n) throw new Error("open breaker admitted a call");
  return ((performance.now() - t0) * 1000) / n;
}

const samples = new Map<string, number[]>(cases.map(([name]) => [name, []]));
samples.set("ours open, tryAcquire() only", []);
for (const [, call] of cases) await perCall(call, CALLS / 4); // warm-up (JIT)
tryAcquireCost(CALLS);
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, call] of cases) samples.get(name)!.push(await perCall(call, CALLS));
  samples.get("ours open, tryAcquire() only")!.push(tryAcquireCost(CALLS));
}
opossumClosed.shutdown();
opossumOpen.shutdown();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const m = new Map([...samples].map(([k, v]) => [k, median(v)]));
console.log(`\ncircuit breaker, µs per call (median of ${ROUNDS} rounds x ${CALLS} calls)`);
for (const [name, us] of m) console.log(`  ${name.padEnd(36)} ${us.toFixed(3)}`);
const ratio = (a: string, b: string) => (m.get(b)! / m.get(a)!).toFixed(1);
const overhead = (name: string) => m.get(name)! - m.get("bare async call")!;
console.log("\nratios (peer / ours; > 1 means ours is cheaper)");
console.log(
  `  open:   opossum ${ratio("ours open", "opossum open")}x, cockatiel ${
    ratio("ours open", "cockatiel open")
  }x`,
);
console.log(
  `  closed overhead over a bare call: ours ${
    overhead("ours closed (with timeout signal)").toFixed(3)
  } µs, ` +
    `cockatiel ${overhead("cockatiel closed (no timeout)").toFixed(3)} µs (no timeout), ` +
    `cockatiel+timeout ${overhead("cockatiel closed + timeout").toFixed(3)} µs, ` +
    `opossum ${overhead("opossum closed (with timeout)").toFixed(3)} µs`,
);
console.log(
  `  closed: opossum ${
    ratio("ours closed (with timeout signal)", "opossum closed (with timeout)")
  }x, cockatiel (no timeout) ${
    ratio("ours closed (with timeout signal)", "cockatiel closed (no timeout)")
  }x, cockatiel + timeout ${
    ratio("ours closed (with timeout signal)", "cockatiel closed + timeout")
  }x`,
);
console.log(
  `  target open <= 0.2 µs: ours ${m.get("ours open")!.toFixed(3)} µs (awaited), ${
    m.get("ours open, tryAcquire() only")!.toFixed(3)
  } µs (tryAcquire)`,
);

if (!values["no-db"]) await benchRateLimit(Number(values.decisions));
