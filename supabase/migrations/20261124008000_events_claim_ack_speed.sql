-- Subscription reads at the speed of the log (docs/events.md "Subscriptions",
-- "Performance"). Same contracts, guarantees and signatures as
-- 20261124005001_events_subscriptions.sql; only how the work is done changes:
--
-- - events.ack (and events.nack) found each stream's acknowledged prefix with a
--   CTE that Postgres inlined into the UPDATE and re-ran per row, each run
--   scanning `positions` once per leased event: O(streams^2 * events). Now the
--   token's leased events are listed once (MATERIALIZED) and looked up in
--   `positions` by a hash join: O(events).
-- - events._advance asked, per stream row, "is anything of this stream pending at
--   or below `scanned`?" with NOT EXISTS over every later version of the stream:
--   it read the rest of each stream on every ack. Now it probes each stream's
--   next matching event once (an ordered index scan that stops at the first
--   row) and uses that probe both for the committed position and for dropping
--   rows.
-- - events.claim_batch read each leased-before stream's next events with a plan
--   that could read the rest of the stream and sort it, then fetched every
--   chosen event a second time by position to return it. Now each stream is read
--   from its done version forward in version order and stops after max_count
--   (an ordered index scan, no sort), the scan of the log reads forward from the
--   scan frontier, and the chosen rows are returned from that one read in the
--   same statement that records the leases.
-- - All four plan their statements once per session (plan_cache_mode
--   force_generic_plan): PL/pgSQL otherwise re-plans a statement with parameters
--   on every call until it trusts a generic plan, and planning these statements
--   cost more than running them (a 1,000-event claim: ~10 ms to plan, ~6 ms to
--   run, measured with auto_explain). The generic plans are the ones wanted here
--   anyway: ordered index scans bounded by parameters.
--
-- What does not change: gap safety (nothing at or above the settled bound is
-- handed out; the bound is taken after the subscription lock, before the rows
-- are read), order within a stream, one fencing token per claim, acks and nacks
-- only where the token still holds the stream, dead letters blocking only their
-- own stream, and the committed position never passing an unhandled event.

-- Moves the committed position up to just below the first pending event (or to
-- `scanned` when nothing is pending) and drops stream rows that say nothing any
-- more. Call with the subscription row locked.
create or replace function events._advance(p_name text)
returns bigint
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan
as $$
declare
  s events.subscriptions;
  v_pending bigint;
begin
  select * into s from events.subscriptions where name = p_name;
  -- Each stream row's next matching event after what is done (a leased,
  -- retrying or blocked stream's next event is pending too): one ordered index
  -- probe per row. Within a stream, version order is position order (appends
  -- behind a younger transaction are refused), so "nothing pending at or below
  -- `scanned`" is "the next pending event is above it".
  with nx as materialized (
    select r.stream, (
      select e.position from events.events e
      where e.stream = r.stream and e.version > r.done_version
        and (s.types is null or e.type = any (s.types))
      order by e.version limit 1) as next
    from events.subscription_streams r
    where r.subscription = p_name
  ), gone as (
    -- A row can go once it holds no lease, retry or block, its done part is all
    -- scanned, and nothing of its stream is pending at or below `scanned`.
    delete from events.subscription_streams r
    using nx
    where r.subscription = p_name and r.stream = nx.stream
      and r.lease_token is null and r.blocked_at is null
      and (r.retry_at is null or r.retry_at <= now())
      and r.done_position <= s.scanned
      and (nx.next is null or nx.next > s.scanned)
  )
  select min(nx.next) into v_pending from nx;
  update events.subscriptions
  set position = greatest(position, least(scanned, coalesce(v_pending - 1, scanned)))
  where name = p_name
  returning position into s.position;
  return s.position;
end
$$;

-- Claims up to max_count events for a worker: per stream the next events after
-- what is done, for streams with no live lease, no pending retry and no dead
-- letter; in position order. One fencing token per claim; a stream's events in
-- the batch are consecutive and in order. attempt: deliveries of the stream's
-- first event in this batch (1 on first delivery; the worker dead-letters past
-- its limit). An expired lease is taken over here with a new token. A paused
-- subscription returns nothing.
create or replace function events.claim_batch(
  subscription text,
  max_count integer default 100,
  lease_seconds double precision default 30,
  worker text default null
) returns table (
  "position" bigint, stream text, type text, data jsonb, metadata jsonb, version bigint,
  created_at timestamptz, attempt integer, lease_token uuid, lease_until timestamptz
)
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  s events.subscriptions;
  v_bound bigint;
  v_token uuid := gen_random_uuid();
  v_until timestamptz;
  v_claimed bigint;
begin
  if max_count is null or max_count not between 1 and 10000 then
    raise exception 'events: max_count must be between 1 and 10000' using errcode = '22023';
  end if;
  if lease_seconds is null or lease_seconds not between 0.1 and 86400 then
    raise exception 'events: lease_seconds must be between 0.1 and 86400' using errcode = '22023';
  end if;
  s := events._lock_subscription(claim_batch.subscription);
  if s.paused then
    return;
  end if;
  v_until := now() + make_interval(secs => lease_seconds);
  -- Taken after the lock. The statement below reads a newer snapshot: an older
  -- bound with newer rows is safe (everything below it has ended and is visible
  -- to any later snapshot); the reverse would not be.
  v_bound := events.settled_bound();

  -- One statement: choose, move the scan frontier, record the leases, return the
  -- rows read once. (A data-modifying CTE runs to completion whether or not it is
  -- read; the reading CTEs see the tables as they were before this statement.)
  return query
  with a as (
    -- Streams with a row: their next events after what is done, when free. An
    -- ordered scan of the stream's (stream, version) index from the done
    -- version on, stopping after max_count: never the rest of the stream.
    select nx.position, nx.stream, nx.type, nx.data, nx.metadata, nx.version, nx.created_at,
      false as scan, r.attempts + 1 as attempt
    from events.subscription_streams r
    cross join lateral (
      select e.* from events.events e
      where e.stream = r.stream and e.version > r.done_version and e.position < v_bound
        and (s.types is null or e.type = any (s.types))
      order by e.version limit claim_batch.max_count
    ) nx
    where r.subscription = s.name and r.blocked_at is null
      and (r.lease_token is null or r.lease_until < now())
      and (r.retry_at is null or r.retry_at <= now())
  ), b as materialized (
    -- The log after `scanned` (the primary key, read forward from there), streams
    -- without a row (a stream with one is (a)'s, or leased, retrying or blocked:
    -- its events wait behind that row).
    select e.position, e.stream, e.type, e.data, e.metadata, e.version, e.created_at,
      true as scan, 1 as attempt
    from events.events e
    where e.position > s.scanned and e.position < v_bound
      and (s.stream_prefix is null or starts_with(e.stream, s.stream_prefix))
      and (s.types is null or e.type = any (s.types))
      and not exists (select 1 from events.subscription_streams r
        where r.subscription = s.name and r.stream = e.stream)
    order by e.position
    limit claim_batch.max_count
  ), chosen as materialized (
    -- The first max_count by position: per stream a prefix of its pending events.
    select * from (select * from a union all select * from b) u
    order by u.position limit claim_batch.max_count
  ), frontier as (
    -- The scan moves past all of (b)'s range when (b) ran dry and the cut kept
    -- all of it; else only to the last scanned event kept.
    update events.subscriptions x
    set scanned = case
      when (select count(*) from b) < claim_batch.max_count
        and (select count(*) from b) = (select count(*) from chosen c where c.scan)
      then greatest(s.scanned, v_bound - 1)
      else greatest(s.scanned, coalesce((select max(c.position) from chosen c where c.scan),
        s.scanned)) end
    where x.name = s.name
  ), leases as (
    -- One row per stream, all under this claim's token. A new row's stream is
    -- done up to the old `scanned` (nothing of it was pending there).
    insert into events.subscription_streams as r (subscription, stream, done_version,
      done_position, leased, lease_token, lease_until, locked_by, attempts)
    select s.name, c.stream, min(c.version) - 1, s.scanned,
      array_agg(c.position order by c.position), v_token, v_until, claim_batch.worker, 1
    from chosen c
    group by c.stream
    on conflict (subscription, stream) do update
      set leased = excluded.leased, lease_token = v_token, lease_until = v_until,
        locked_by = excluded.locked_by, attempts = r.attempts + 1, retry_at = null
  )
  -- attempt: what the upsert above writes (the stream rows cannot change under
  -- the subscription's lock, and (b)'s streams have none).
  select c.position, c.stream, c.type, c.data, c.metadata, c.version, c.created_at,
    c.attempt, v_token, v_until
  from chosen c
  order by c.position;
  get diagnostics v_claimed = row_count;

  if v_claimed = 0 then
    perform events._advance(s.name);
  end if;
end
$$;

-- Acknowledges handled events of a claim. Acts only on streams still leased under
-- `token` (a worker whose lease was taken over changes nothing). Per stream the
-- acknowledged part is the longest prefix of its leased events found in
-- `positions` (a stream is handled in order); the rest stays leased. Returns how
-- many events were acknowledged: in a projection, acknowledge in the same
-- transaction as the read-model writes and roll back when this is short.
create or replace function events.ack(subscription text, token uuid, positions bigint[])
returns integer
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan
as $$
declare
  v_count integer;
begin
  perform events._lock_subscription(ack.subscription);
  with held as materialized (
    -- The token's leased events, each with its place in its stream's lease.
    select r.stream, u.p, u.i, cardinality(r.leased) as n
    from events.subscription_streams r
    cross join lateral unnest(r.leased) with ordinality u (p, i)
    where r.subscription = ack.subscription and r.lease_token = ack.token
  ), acked as materialized (
    select distinct a.p from unnest(ack.positions) a (p) where a.p is not null
  ), done as materialized (
    -- Per stream, k: the longest prefix of the lease found in `positions` (a hash
    -- join, not a scan of `positions` per leased event).
    select h.stream, max(h.n) as n,
      coalesce(min(h.i) filter (where a.p is null) - 1, max(h.n)) as k
    from held h
    left join acked a on a.p = h.p
    group by h.stream
  ), upd as (
    update events.subscription_streams x
    set done_position = greatest(x.done_position, x.leased[d.k]),
      done_version = (select e.version from events.events e where e.position = x.leased[d.k]),
      leased = case when d.k < d.n then x.leased[d.k + 1:] end,
      lease_token = case when d.k < d.n then x.lease_token end,
      lease_until = case when d.k < d.n then x.lease_until end,
      locked_by = case when d.k < d.n then x.locked_by end,
      -- The stream's next event was delivered once already if it is still leased.
      attempts = case when d.k < d.n then 1 else 0 end,
      last_error = null
    from done d
    where x.subscription = ack.subscription and x.stream = d.stream and d.k > 0
    returning d.k
  )
  select coalesce(sum(upd.k), 0)::integer into v_count from upd;
  if v_count > 0 then
    perform events._advance(ack.subscription);
  end if;
  return v_count;
end
$$;

-- Reports failed events of a claim (only streams still leased under `token`).
-- Per stream, the first leased event named in `positions` failed; the leased
-- events before it count as handled (a stream is handled in order). The stream's
-- lease ends. Then either the failed event is delivered again after
-- retry_after_seconds, or (dead => true) it is copied to events.dead_letters with
-- the error and its stream is blocked until events.retry_dead_letter or
-- events.discard_dead_letter; other streams keep flowing. Returns how many
-- streams were affected.
create or replace function events.nack(
  subscription text,
  token uuid,
  positions bigint[],
  error text default null,
  dead boolean default false,
  retry_after_seconds double precision default 0
) returns integer
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  v_count integer;
begin
  perform events._lock_subscription(nack.subscription);
  with held as materialized (
    select r.stream, u.p, u.i
    from events.subscription_streams r
    cross join lateral unnest(r.leased) with ordinality u (p, i)
    where r.subscription = nack.subscription and r.lease_token = nack.token
  ), named as materialized (
    select distinct a.p from unnest(nack.positions) a (p) where a.p is not null
  ), first_named as materialized (
    -- Per stream, f: the place of its first leased event named in `positions`.
    select h.stream, min(h.i) as f
    from held h
    join named a on a.p = h.p
    group by h.stream
  ), failed as materialized (
    select x.stream, x.attempts, fn.f, x.leased[fn.f] as failed_position,
      case when fn.f > 1 then x.leased[fn.f - 1] end as done_position
    from first_named fn
    join events.subscription_streams x
      on x.subscription = nack.subscription and x.stream = fn.stream
  ), buried as (
    insert into events.dead_letters (subscription, position, stream, type, data, metadata,
      version, created_at, attempts, error)
    select nack.subscription, e.position, e.stream, e.type, e.data, e.metadata, e.version,
      e.created_at, case when f.f > 1 then 1 else f.attempts end, left(nack.error, 4000)
    from failed f join events.events e on e.position = f.failed_position
    where nack.dead
    on conflict (subscription, position) do update
      set attempts = excluded.attempts, error = excluded.error, failed_at = now()
  ), upd as (
    update events.subscription_streams x
    set done_position = greatest(x.done_position, coalesce(f.done_position, x.done_position)),
      done_version = coalesce((select e.version from events.events e
        where e.position = f.done_position), x.done_version),
      leased = null, lease_token = null, lease_until = null, locked_by = null,
      attempts = case when nack.dead then 0 when f.f > 1 then 1 else x.attempts end,
      retry_at = case when nack.dead then null else now() + make_interval(
        secs => least(greatest(coalesce(nack.retry_after_seconds, 0), 0), 31536000)) end,
      blocked_at = case when nack.dead then f.failed_position end,
      last_error = left(nack.error, 4000)
    from failed f
    where x.subscription = nack.subscription and x.stream = f.stream
    returning 1
  )
  -- (A data-modifying CTE runs whether or not it is read.)
  select count(*)::integer into v_count from upd;
  perform events._advance(nack.subscription);
  return v_count;
end
$$;

revoke all on function events._advance(text) from public, anon, authenticated;
