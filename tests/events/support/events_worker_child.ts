/**
 * A subscription worker in its own process, for tests that kill workers
 * (tests/events/events_chaos_test.ts). Usage:
 *   deno run -A tests/events/support/events_worker_child.ts <dbUrl> <workerId> <logPath> <leaseMs>
 *     [<batchSize>]
 * Drives three consumers until stdin closes:
 *   chaos-all    every event;        chaos-a  events of type "a";
 *   chaos-model  a projection into public.chaos_model (per stream: count, last version;
 *                an event out of stream order throws, so it would be dead-lettered).
 * Each delivery appends one JSON line to <logPath> (O_APPEND: one total order across
 * processes, consistent with real time) and then `<subscription> <position>\n` to stdout
 * (progress for the parent). The worker's own log lines go to stderr.
 */
import postgres from "npm:postgres@3";
import {
  createLogger,
  defineProjection,
  defineSubscription,
  type EventRecord,
  runSubscriptions,
} from "../../../supabase/functions/_shared/mod.ts";

const [url, workerId, logPath, leaseMs, batchSize] = Deno.args;
// Three subscriptions, each with up to `concurrency` projection transactions open.
const sql = postgres(url!, { max: 16, onnotice: () => {} });
const log = Deno.openSync(logPath!, { append: true, create: true });
const encoder = new TextEncoder();

function record(sub: string, e: EventRecord, attempt: number): void {
  const line = JSON.stringify({
    s: sub,
    p: e.position,
    st: e.stream,
    v: e.version,
    a: attempt,
    w: workerId,
  });
  log.writeSync(encoder.encode(line + "\n"));
  Deno.stdout.writeSync(encoder.encode(`${sub} ${e.position}\n`));
}

const all = defineSubscription({
  name: "chaos-all",
  handler: (e, { attempt }) => record("chaos-all", e, attempt),
});
const typeA = defineSubscription({
  name: "chaos-a",
  filter: { types: ["a"] },
  handler: (e, { attempt }) => record("chaos-a", e, attempt),
});
const model = defineProjection({
  name: "chaos-model",
  maxAttempts: 1,
  apply: async (tx, e, { attempt }) => {
    const [row] = await tx`
      with prev as (select last_version from public.chaos_model where stream = ${e.stream})
      insert into public.chaos_model as m (stream, n, last_version) values (${e.stream}, 1, ${e.version})
      on conflict (stream) do update set n = m.n + 1, last_version = excluded.last_version
      returning (select last_version from prev) as prev`;
    const prev = row!.prev === null ? 0 : Number(row!.prev);
    if (prev !== e.version - 1) throw new Error(`${e.stream}: version ${e.version} after ${prev}`);
    record("chaos-model", e, attempt);
  },
});

const stop = new AbortController();
// The parent closes stdin to stop this worker cleanly (or kills it).
(async () => {
  for await (const _ of Deno.stdin.readable) { /* until closed */ }
  stop.abort();
})();
await runSubscriptions({
  sql,
  subscriptions: [all, typeA, model],
  mode: "listen",
  pollMs: 50,
  leaseMs: Number(leaseMs),
  batchSize: Number(batchSize ?? 100),
  workerId,
  signal: stop.signal,
  log: createLogger("warn", { workerId }, (_level, line) => console.error(line)),
});
await sql.end();
