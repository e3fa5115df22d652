/**
 * Chaos: 10,000 jobs, 4 worker processes on one database, planned handler
 * failures, and a worker SIGKILLed at 15%, 35%, 55% and 75% of the queue, each
 * replaced. At the end every job is completed or dead-lettered with its reason;
 * none is lost; a job ran successfully twice only after a fresh claim.
 *
 * Kills follow progress, not a timer: at each kill point a `chaos.hold` job
 * waits in the queue just before job p (claims take the oldest run_at first),
 * the worker that claims it parks holding its lease, and the test kills that
 * worker before placing the next one. So there are exactly four kills on any
 * machine, each while the victim runs a leased job, and a kill point the queue
 * has already passed still gets its kill (its hold job is then first in line).
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_harness/database.ts";
import { failsAt, MAX_ATTEMPTS } from "./support/chaos_plan.ts";

const JOBS = 10_000;
const WORKERS = 4;
const KILL_AT = [0.15, 0.35, 0.55, 0.75];
/** Only ever fails the test (a hung run must end); it never decides what happens. */
const DEADLINE_MS = 600_000;

/** Claim order: a past run_at per slot, 1 ms apart; job n takes slot 2n. */
const slot = (i: number) => new Date(Date.UTC(2020, 0, 1) + i).toISOString();

/** Polls a cheap query until it yields a value; the deadline only turns a hang into a failure. */
async function until<T>(
  what: string,
  deadline: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("queue chaos: 10k jobs, 4 workers, planned failures, a SIGKILL at each kill point", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.chaos_effects (
    job_id bigint not null, attempt int not null, pid int not null, at timestamptz default now())`;
  await db.sql`create table public.chaos_holds (
    job_id bigint primary key, pid int not null, attempt int not null)`;
  const enqueue = async (jobs: object[]) =>
    (await db.sql`select id from queue.enqueue_many(${db.sql.json(jobs as never)})`).map((r) =>
      Number(r.id)
    );
  const ids = await enqueue(Array.from({ length: JOBS }, (_, n) => ({
    job_type: "chaos",
    payload: { n },
    max_attempts: MAX_ATTEMPTS,
    run_at: slot(2 * n),
  })));

  const script = new URL("./support/chaos_worker.ts", import.meta.url).pathname;
  const children = new Map<number, Deno.ChildProcess>();
  const spawn = () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, db.url],
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.set(child.pid, child);
  };
  const kills: { pid: number; lockedBy: string; live: boolean; held: number; done: number }[] = [];
  const started = Date.now();
  const deadline = started + DEADLINE_MS;
  try {
    for (let i = 0; i < WORKERS; i++) spawn();
    for (const [k, share] of KILL_AT.entries()) {
      const p = Math.round(share * JOBS);
      const [hold] = await enqueue([{
        job_type: "chaos.hold",
        payload: { n: JOBS + k },
        max_attempts: MAX_ATTEMPTS,
        run_at: slot(2 * p - 1),
      }]);
      ids.push(hold!);
      const pid = await until(`a worker to hold job ${hold}`, deadline, async () => {
        const [row] = await db.sql`select pid from public.chaos_holds where job_id = ${hold!}`;
        return row?.pid as number | undefined;
      });
      const [state] = await db.sql`
        select j.locked_by, j.lease_until > now() as live,
          (select count(*)::int from queue.jobs h
            where h.locked_by = j.locked_by and h.lease_until > now()) as held,
          (select count(*)::int from queue.jobs) as remaining
        from queue.jobs j where j.id = ${hold!}`;
      const victim = children.get(pid);
      assert.ok(victim, `job ${hold} is held by one of our workers`);
      victim.kill("SIGKILL");
      await victim.status;
      children.delete(pid);
      kills.push({
        pid,
        lockedBy: state?.locked_by,
        live: state?.live,
        held: state?.held,
        done: ids.length - state?.remaining,
      });
      // The dead worker's hold lease is long (it had to outlast the wait for
      // this kill); end it now, as the lease running out would.
      await db.sql`update queue.jobs set lease_until = now() where id = ${hold!}`;
      spawn();
    }
    await until("the queue to drain", deadline, async () => {
      const [{ n }] = await db.sql`select count(*)::int as n from queue.jobs` as [{ n: number }];
      return n === 0 ? true : undefined;
    });
  } finally {
    for (const child of children.values()) {
      child.kill("SIGKILL");
      await child.status;
    }
  }

  const [counts] = await db.sql`
    with ran as (select job_id, count(*) as runs, count(distinct attempt) as attempts
                 from public.chaos_effects group by job_id)
    select
      (select count(*)::int from ran) as completed,
      (select count(*)::int from queue.dead_letters) as dead,
      (select count(*)::int from ran where runs > 1) as twice,
      (select count(*)::int from ran where runs <> attempts) as same_claim_twice,
      (select count(*)::int from queue.dead_letters d where d.id in (select job_id from ran))
        as dead_after_success,
      (select count(*)::int from unnest(${ids}::bigint[]) g(id)
         where g.id not in (select job_id from ran)
           and g.id not in (select id from queue.dead_letters)) as lost`;
  const reasons = await db.sql`select reason, count(*)::int as n,
      bool_and(jsonb_array_length(errors) = attempts and last_error is not null
        and payload ? 'n') as complete_history
    from queue.dead_letters group by reason order by reason`;
  // Each hold job ran again after its worker died: completed on a later claim,
  // or dead-lettered with the killed run's lease expiry on record.
  const [rerun] = await db.sql`
    select count(*)::int as n from public.chaos_holds h
    where exists (select 1 from public.chaos_effects e
                  where e.job_id = h.job_id and e.attempt > h.attempt)
       or exists (select 1 from queue.dead_letters d where d.id = h.job_id
                  and d.errors @> jsonb_build_array(jsonb_build_object(
                    'attempt', h.attempt, 'error', 'lease expired')))`;
  // Jobs whose every run is a planned failure: they must end as dead letters.
  const doomed = ids.slice(0, JOBS).filter((_, n) =>
    Array.from({ length: MAX_ATTEMPTS }, (_, a) => a + 1).every((a) => failsAt(n, a))
  );
  const [doomedDead] = await db.sql`select count(*)::int as n from queue.dead_letters
    where id = any(${doomed}::bigint[])`;
  const killed = kills.map((k) => k.pid);
  const [firstRunKilled] = await db.sql`
    select count(*)::int as n from (
      select distinct on (job_id) job_id, pid from public.chaos_effects
      where job_id in (select job_id from public.chaos_effects group by job_id having count(*) > 1)
      order by job_id, at) f
    where f.pid = any(${killed}::int[])`;
  console.log(
    `chaos: ${ids.length} jobs, ${kills.length} kills (after ${
      kills.map((k) => `${k.done} done, victim holding ${k.held}`).join("; ")
    }) in ${Date.now() - started} ms; completed ${counts!.completed}, dead-lettered ${
      counts!.dead
    } (${reasons.map((r) => `${r.reason}: ${r.n}`).join(", ")}), lost ${counts!.lost}, ` +
      `ran successfully twice ${counts!.twice} (first run on a killed worker: ${
        firstRunKilled!.n
      }), dead-lettered after a successful run ${counts!.dead_after_success}`,
  );
  assert.equal(kills.length, KILL_AT.length, "one kill per kill point");
  assert.equal(new Set(killed).size, KILL_AT.length, "each kill took a different worker");
  for (const k of kills) {
    assert.equal(k.lockedBy, `chaos-${k.pid}`, "the victim held the hold job's lease");
    assert.equal(k.live, true, "that lease was live when the victim died");
  }
  assert.equal(rerun!.n, KILL_AT.length, "every interrupted hold job was claimed again");
  assert.equal(counts!.lost, 0, "no job lost");
  assert.equal(counts!.same_claim_twice, 0, "no claim ran twice: repeats come from new claims");
  assert.equal(counts!.completed + counts!.dead - counts!.dead_after_success, ids.length);
  assert.ok(reasons.every((r) => r.complete_history), "dead letters keep payload and errors");
  assert.ok(
    reasons.every((r) => ["attempts_exhausted", "lease_expired"].includes(r.reason)),
    `dead-letter reasons: ${reasons.map((r) => r.reason)}`,
  );
  assert.ok(doomed.length > 0, "the plan exhausts some jobs");
  assert.equal(doomedDead!.n, doomed.length, "every job that failed each run is a dead letter");
});
