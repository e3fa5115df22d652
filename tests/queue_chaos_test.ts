/**
 * Chaos: 10,000 jobs, 4 worker processes on one database, handlers failing at
 * random, workers SIGKILLed at random and replaced. At the end every job is
 * completed or dead-lettered with its reason; none is lost; a job ran
 * successfully twice only after a fresh claim (its first lease had expired).
 */
import assert from "node:assert/strict";
import { freshDatabase } from "./_harness/database.ts";

const JOBS = 10_000;
const WORKERS = 4;
const FAILURE_RATE = 0.2;
const MAX_ATTEMPTS = 4;

Deno.test("queue chaos: 10k jobs, 4 workers, random failures and SIGKILLs", async () => {
  await using db = await freshDatabase();
  await db.sql`create table public.chaos_effects (
    job_id bigint not null, attempt int not null, pid int not null, at timestamptz default now())`;
  await db.sql`select count(*) from queue.enqueue_many(${
    db.sql.json(Array.from({ length: JOBS }, (_, n) => ({
      job_type: "chaos",
      payload: { n },
      max_attempts: MAX_ATTEMPTS,
    })))
  })`;
  const script = new URL("./queue/chaos_worker.ts", import.meta.url).pathname;
  const spawn = () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, db.url, String(FAILURE_RATE)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    return child;
  };
  const children = new Set<Deno.ChildProcess>();
  for (let i = 0; i < WORKERS; i++) children.add(spawn());
  const killed = new Set<number>();
  const started = Date.now();
  let remaining = JOBS;
  // Kills are driven by progress, not by time: one each time another tenth of the
  // jobs is done, so a fast machine sees as many kills as a slow one.
  let nextKill = JOBS / 10;
  while (remaining > 0 && Date.now() - started < 120_000) {
    await new Promise((r) => setTimeout(r, 20));
    [{ n: remaining }] = await db.sql`select count(*)::int as n from queue.jobs`;
    // Kill while there is work; near the end let the survivors finish.
    if (JOBS - remaining >= nextKill && remaining > 300) {
      nextKill += JOBS / 10;
      const victim = [...children][Math.floor(Math.random() * children.size)]!;
      victim.kill("SIGKILL");
      await victim.status;
      killed.add(victim.pid);
      children.delete(victim);
      children.add(spawn());
    }
  }
  for (const child of children) {
    child.kill("SIGKILL");
    await child.status;
  }
  assert.equal(remaining, 0, "the queue drained");

  const [counts] = await db.sql`
    with ran as (select job_id, count(*) as runs, count(distinct attempt) as attempts,
                        min(pid) filter (where true) as pid from public.chaos_effects group by job_id)
    select
      (select count(*)::int from ran) as completed,
      (select count(*)::int from queue.dead_letters) as dead,
      (select count(*)::int from ran where runs > 1) as twice,
      (select count(*)::int from ran where runs <> attempts) as same_claim_twice,
      (select count(*)::int from queue.dead_letters d where d.id in (select job_id from ran))
        as dead_after_success,
      (select count(*)::int from generate_series(1, ${JOBS}) g(id)
         where g.id not in (select job_id from ran)
           and g.id not in (select id from queue.dead_letters)) as lost`;
  const reasons = await db.sql`select reason, count(*)::int as n,
      bool_and(jsonb_array_length(errors) = attempts and last_error is not null
        and payload ? 'n') as complete_history
    from queue.dead_letters group by reason order by reason`;
  const [firstRunKilled] = await db.sql`
    select count(*)::int as n from (
      select distinct on (job_id) job_id, pid from public.chaos_effects
      where job_id in (select job_id from public.chaos_effects group by job_id having count(*) > 1)
      order by job_id, at) f
    where f.pid = any(${[...killed]}::int[])`;
  console.log(
    `chaos: ${JOBS} jobs, ${killed.size} kills in ${Date.now() - started} ms; ` +
      `completed ${counts!.completed}, dead-lettered ${counts!.dead} ` +
      `(${reasons.map((r) => `${r.reason}: ${r.n}`).join(", ")}), lost ${counts!.lost}, ` +
      `ran successfully twice ${counts!.twice} (first run on a killed worker: ${
        firstRunKilled!.n
      }), dead-lettered after a successful run ${counts!.dead_after_success}`,
  );
  assert.equal(counts!.lost, 0, "no job lost");
  assert.equal(counts!.same_claim_twice, 0, "no claim ran twice: repeats come from new claims");
  assert.ok(counts!.completed + counts!.dead - counts!.dead_after_success === JOBS);
  assert.ok(reasons.every((r) => r.complete_history), "dead letters keep payload and errors");
  assert.ok(counts!.dead > 0, "random failures exhausted some jobs");
  assert.ok(killed.size >= 3, "workers were killed");
});
