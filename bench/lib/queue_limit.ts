/**
 * The physical limit of draining the queue: the same claim + complete work the
 * worker asks for, done by one plpgsql loop inside Postgres, so no client round
 * trip, no JSON to a client, no handler. Each batch is claimed with
 * `queue.claim` (the sweep of expired leases only on the first call, as the
 * worker does about once a second), completed with `queue.complete`, and
 * committed, as a worker's round trips are. Timed server-side.
 *
 * The procedure is created in the bench's own databases only, never by a migration.
 */
import postgres from "npm:postgres@3";

export const IN_DB_LIMIT_SQL = `
create or replace procedure public.bench_in_db_limit(
  batch integer, inout jobs bigint default 0, inout ms double precision default 0)
language plpgsql
as $$
declare
  started timestamptz := clock_timestamp();
  ids bigint[];
  tokens uuid[];
  sweep boolean := true;
begin
  loop
    select array_agg(c.id), array_agg(c.lease_token) into ids, tokens
    from queue.claim('default', batch, 30, 'in-db-limit', sweep) as c;
    exit when ids is null;
    perform queue.complete(ids, tokens);
    jobs := jobs + cardinality(ids);
    sweep := false;
    commit;
  end loop;
  ms := extract(epoch from clock_timestamp() - started) * 1000;
end
$$;`;

/** Drains the default queue of the database at `url`; returns jobs done and server-side ms. */
export async function runInDbLimit(url: string, batch: number): Promise<{ n: number; ms: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql.unsafe("call public.bench_in_db_limit($1)", [batch]);
    return { n: Number(row!.jobs), ms: Number(row!.ms) };
  } finally {
    await sql.end();
  }
}
