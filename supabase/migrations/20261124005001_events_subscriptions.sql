-- Subscriptions, checkpoints and retention for the event log (DESIGN §4.6,
-- docs/events.md "Subscriptions").
--
-- Delivery is at-least-once, in order within a stream, parallel across streams,
-- with leases and fencing tokens like the queue. A subscription's state:
--   position  committed: every matching event at or below it is handled (acked
--             or dead-lettered). It never moves past an unhandled event.
--   scanned   the log has been examined up to here (>= position). Every matching
--             event in (position, scanned] is handled unless its stream has a row
--             in events.subscription_streams, which then says how far that stream
--             is done, whether it is leased, waiting to retry or blocked.
-- A claim hands out, per stream, the next events after what is done, and only
-- for streams that hold no live lease and no dead letter: a stream's next events
-- wait until its earlier batch is acked (or its lease expires). A dead letter
-- blocks only its own stream until it is retried or discarded; other streams
-- keep flowing and the committed position waits below it.
--
-- Claims, acks and nacks of one subscription lock its row first, then stream
-- rows: one lock order, no deadlocks; claims of one subscription take turns (each
-- is one short statement), the handlers they feed run in parallel.

create table events.subscriptions (
  name text primary key
    constraint subscriptions_name_check check (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  filter jsonb not null default '{}',
  stream_prefix text,
  types text[],
  position bigint not null default 0,
  scanned bigint not null default 0,
  paused boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscriptions_scanned_check check (scanned >= position)
);

comment on table events.subscriptions is
  'Named consumers of the event log: filter, committed position, scan frontier, paused.';

create table events.subscription_streams (
  subscription text not null references events.subscriptions (name) on delete cascade,
  stream text not null,
  -- Every matching event of the stream up to this version is handled.
  done_version bigint not null,
  -- ... and none at or below this position is pending (a row above `scanned`
  -- must stay, or the scan would hand its acked events out again).
  done_position bigint not null,
  -- The lease: positions handed out (in order), their token and deadline.
  leased bigint[],
  lease_token uuid,
  lease_until timestamptz,
  locked_by text,
  -- Deliveries of the stream's next event; reset when the stream moves on.
  attempts integer not null default 0,
  retry_at timestamptz,
  last_error text,
  -- The position of the dead letter holding this stream, if any.
  blocked_at bigint,
  primary key (subscription, stream),
  constraint subscription_streams_lease_check check ((lease_token is null) = (lease_until is null))
);

comment on table events.subscription_streams is
  'Per-stream progress of a subscription above its committed position: leases, retries, blocks.';

create table events.dead_letters (
  subscription text not null references events.subscriptions (name) on delete cascade,
  -- A copy of the event: retention may delete the original.
  position bigint not null,
  stream text not null,
  type text not null,
  data jsonb not null,
  metadata jsonb not null,
  version bigint not null,
  created_at timestamptz not null,
  attempts integer not null,
  error text,
  failed_at timestamptz not null default now(),
  primary key (subscription, position)
);

comment on table events.dead_letters is
  'Events a subscription gave up on; each blocks its stream until retried or discarded.';

-- Projection checkpoints for consumers that read with events.read and keep their
-- read model in the same transaction as their position.
create table events.checkpoints (
  name text primary key
    constraint checkpoints_name_check check (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  position bigint not null default 0,
  updated_at timestamptz not null default now()
);

comment on table events.checkpoints is
  'Positions of projections that read with events.read; retention keeps what they have not passed.';

alter table events.subscriptions enable row level security;
alter table events.subscription_streams enable row level security;
alter table events.dead_letters enable row level security;
alter table events.checkpoints enable row level security;
revoke all on events.subscriptions, events.subscription_streams, events.dead_letters,
  events.checkpoints from public, anon, authenticated;
grant select on events.subscriptions, events.subscription_streams, events.dead_letters,
  events.checkpoints to service_role;
create policy "no direct access" on events.subscriptions
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on events.subscription_streams
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on events.dead_letters
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on events.checkpoints
  as restrictive for all to public using (false) with check (false);

-- The subscription's row, locked; P0002 when there is none.
create or replace function events._lock_subscription(p_name text)
returns events.subscriptions
language plpgsql volatile security definer set search_path = ''
as $$
declare
  s events.subscriptions;
begin
  select * into s from events.subscriptions where name = p_name for update;
  if not found then
    raise exception 'events: no subscription named %', p_name using errcode = 'P0002';
  end if;
  return s;
end
$$;

-- Moves the committed position up to just below the first pending event (or to
-- `scanned` when nothing is pending) and drops stream rows that say nothing any
-- more. Call with the subscription row locked.
create or replace function events._advance(p_name text)
returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
declare
  s events.subscriptions;
  v_pending bigint;
begin
  select * into s from events.subscriptions where name = p_name;
  -- Each stream row's first matching event after what is done (a leased,
  -- retrying or blocked stream's next event is pending too).
  select min(nx.position) into v_pending
  from events.subscription_streams r
  cross join lateral (
    select e.position from events.events e
    where e.stream = r.stream and e.version > r.done_version
      and (s.types is null or e.type = any (s.types))
    order by e.version limit 1
  ) nx
  where r.subscription = p_name;
  update events.subscriptions
  set position = greatest(position, least(scanned, coalesce(v_pending - 1, scanned)))
  where name = p_name
  returning position into s.position;
  -- A row can go once it holds no lease, retry or block, its done part is all
  -- scanned, and nothing of its stream is pending at or below `scanned`.
  delete from events.subscription_streams r
  where r.subscription = p_name
    and r.lease_token is null and r.blocked_at is null
    and (r.retry_at is null or r.retry_at <= now())
    and r.done_position <= s.scanned
    and not exists (
      select 1 from events.events e
      where e.stream = r.stream and e.version > r.done_version and e.position <= s.scanned
        and (s.types is null or e.type = any (s.types)));
  return s.position;
end
$$;

-- Parses and checks a filter: {"streamPrefix"?: string, "types"?: [string]}.
create or replace function events._check_filter(filter jsonb)
returns void
language plpgsql immutable security definer set search_path = ''
as $$
declare
  v_key text;
begin
  if filter is null or jsonb_typeof(filter) <> 'object' then
    raise exception 'events: filter must be a JSON object {"streamPrefix"?, "types"?}'
      using errcode = '22023';
  end if;
  for v_key in select jsonb_object_keys(filter) loop
    if v_key not in ('streamPrefix', 'types') then
      raise exception 'events: unknown filter key %; use streamPrefix and types', v_key
        using errcode = '22023';
    end if;
  end loop;
  if filter ? 'streamPrefix' and (jsonb_typeof(filter -> 'streamPrefix') <> 'string'
    or char_length(filter ->> 'streamPrefix') not between 1 and 200) then
    raise exception 'events: filter.streamPrefix must be a string of 1..200 characters'
      using errcode = '22023';
  end if;
  if filter ? 'types' and (jsonb_typeof(filter -> 'types') <> 'array'
    or jsonb_array_length(filter -> 'types') not between 1 and 1000
    or exists (select 1 from jsonb_array_elements(filter -> 'types') t
      where jsonb_typeof(t) <> 'string' or char_length(t #>> '{}') not between 1 and 200)) then
    raise exception 'events: filter.types must be an array of 1..1000 type names'
      using errcode = '22023';
  end if;
end
$$;

-- Creates a subscription, or updates the filter of an existing one (a worker
-- registers its subscriptions on every start; position and state are kept, and
-- start_at only applies on creation). start_at: 'beginning' (every event in the
-- log) or 'now' (events that commit from now on). Returns {"name", "position",
-- "paused", "filter", "created"}: cheap, unlike subscription_status's lag count.
create or replace function events.subscribe(
  name text,
  filter jsonb default '{}',
  start_at text default 'beginning'
) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_start bigint;
  v_created boolean;
  v_filter jsonb := coalesce(subscribe.filter, '{}');
begin
  if subscribe.name is null or subscribe.name !~ '^[A-Za-z0-9_.:-]{1,128}$' then
    raise exception 'events: subscription name must match [A-Za-z0-9_.:-]{1,128}'
      using errcode = '22023';
  end if;
  perform events._check_filter(v_filter);
  if start_at is null or start_at not in ('beginning', 'now') then
    raise exception 'events: start_at must be ''beginning'' or ''now'', got %', start_at
      using errcode = '22023';
  end if;
  -- 'now': everything below the settled bound is in the past; anything still in
  -- flight lands above it and is delivered.
  v_start := case start_at when 'now' then events.settled_bound() - 1 else 0 end;
  insert into events.subscriptions as s (name, filter, stream_prefix, types, position, scanned)
  values (subscribe.name, v_filter, v_filter ->> 'streamPrefix',
    case when v_filter ? 'types'
      then array(select jsonb_array_elements_text(v_filter -> 'types')) end,
    v_start, v_start)
  on conflict on constraint subscriptions_pkey do nothing;
  v_created := found;
  if not v_created then
    update events.subscriptions s
    set filter = v_filter, stream_prefix = v_filter ->> 'streamPrefix',
      types = case when v_filter ? 'types'
        then array(select jsonb_array_elements_text(v_filter -> 'types')) end,
      updated_at = now()
    where s.name = subscribe.name and s.filter is distinct from v_filter;
  end if;
  return (select jsonb_build_object('name', s.name, 'position', s.position, 'paused', s.paused,
      'filter', s.filter, 'created', v_created)
    from events.subscriptions s where s.name = subscribe.name);
end
$$;

-- Deletes a subscription with its stream state and dead letters.
create or replace function events.unsubscribe(name text)
returns boolean
language sql volatile security definer set search_path = ''
as $$
  with d as (delete from events.subscriptions s where s.name = unsubscribe.name returning 1)
  select exists (select 1 from d)
$$;

-- Stops handing out events (leases already given may still be acked).
create or replace function events.pause(name text)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform events._lock_subscription(pause.name);
  update events.subscriptions s set paused = true, updated_at = now() where s.name = pause.name;
end
$$;

create or replace function events.resume(name text)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform events._lock_subscription(resume.name);
  update events.subscriptions s set paused = false, updated_at = now() where s.name = resume.name;
end
$$;

-- Delivers every matching event from `from_position` on again (inclusive). Leases
-- are dropped (their tokens then change nothing), stream blocks lifted, and dead
-- letters at or after the point removed: those events come again. Earlier dead
-- letters stay for inspection but no longer hold their streams.
create or replace function events.replay(name text, from_position bigint)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_at bigint := greatest(coalesce(from_position, 1) - 1, 0);
begin
  perform events._lock_subscription(replay.name);
  delete from events.subscription_streams r where r.subscription = replay.name;
  delete from events.dead_letters d where d.subscription = replay.name and d.position > v_at;
  update events.subscriptions s set position = v_at, scanned = v_at, updated_at = now()
  where s.name = replay.name;
end
$$;

-- Replays from a time: from the first event created at or after `from_time`
-- (creation is the appending transaction's start, so a few events from just
-- before may come too; at-least-once). With no such event: from the settled bound.
create or replace function events.replay(name text, from_time timestamptz)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_from bigint;
begin
  if from_time is null then
    raise exception 'events: replay needs a time' using errcode = '22023';
  end if;
  select min(e.position) into v_from from events.events e where e.created_at >= from_time;
  perform events.replay(replay.name, coalesce(v_from, events.settled_bound()));
end
$$;

-- {"position", "lag", "paused", "deadLetters", "leasedStreams", "blockedStreams",
-- "scanned", "filter"}. lag: matching events not yet handled (counted; its cost
-- grows with the lag: for dashboards and alerts, not the hot path).
create or replace function events.subscription_status(name text)
returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  s events.subscriptions;
  v_lag bigint;
begin
  select * into s from events.subscriptions x where x.name = subscription_status.name;
  if not found then
    raise exception 'events: no subscription named %', subscription_status.name
      using errcode = 'P0002';
  end if;
  select (select count(*) from events.events e
      where e.position > s.scanned and e.position < events.settled_bound()
        and (s.stream_prefix is null or starts_with(e.stream, s.stream_prefix))
        and (s.types is null or e.type = any (s.types)))
    + coalesce((select sum(n) from events.subscription_streams r
      cross join lateral (select count(*) as n from events.events e
        where e.stream = r.stream and e.version > r.done_version and e.position <= s.scanned
          and (s.types is null or e.type = any (s.types))) c
      where r.subscription = s.name), 0)
  into v_lag;
  return jsonb_build_object(
    'position', s.position,
    'lag', v_lag,
    'paused', s.paused,
    'deadLetters', (select count(*) from events.dead_letters d where d.subscription = s.name),
    'leasedStreams', (select count(*) from events.subscription_streams r
      where r.subscription = s.name and r.lease_until >= now()),
    'blockedStreams', (select count(*) from events.subscription_streams r
      where r.subscription = s.name and r.blocked_at is not null),
    'scanned', s.scanned,
    'filter', s.filter);
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
as $$
#variable_conflict use_column
declare
  s events.subscriptions;
  v_bound bigint;
  v_token uuid := gen_random_uuid();
  v_until timestamptz;
  v_positions bigint[];
  v_streams text[];
  v_versions bigint[];
  v_scanned bigint;
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
  -- Taken after the lock. The statements below read newer snapshots: an older
  -- bound with newer rows is safe (everything below it has ended and is visible
  -- to any later snapshot); the reverse would not be.
  v_bound := events.settled_bound();

  with a as (
    -- Streams with a row: their next events after what is done, when free.
    select nx.position, r.stream, nx.version, false as scan
    from events.subscription_streams r
    cross join lateral (
      select e.position, e.version from events.events e
      where e.stream = r.stream and e.version > r.done_version and e.position < v_bound
        and (s.types is null or e.type = any (s.types))
      order by e.version limit claim_batch.max_count
    ) nx
    where r.subscription = s.name and r.blocked_at is null
      and (r.lease_token is null or r.lease_until < now())
      and (r.retry_at is null or r.retry_at <= now())
  ), b as (
    -- The log after `scanned`, streams without a row (a stream with one is
    -- (a)'s, or leased, retrying or blocked: its events wait behind that row).
    select e.position, e.stream, e.version, true as scan
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
  )
  select array(select c.position from chosen c order by c.position),
    array(select c.stream from chosen c order by c.position),
    array(select c.version from chosen c order by c.position),
    -- The scan moves past all of (b)'s range when (b) ran dry and the cut kept
    -- all of it; else only to the last scanned event kept.
    case when (select count(*) from b) < claim_batch.max_count
        and (select count(*) from b) = (select count(*) from chosen c where c.scan)
      then greatest(s.scanned, v_bound - 1)
      else greatest(s.scanned, coalesce((select max(c.position) from chosen c where c.scan),
        s.scanned)) end
  into v_positions, v_streams, v_versions, v_scanned;

  update events.subscriptions x set scanned = v_scanned where x.name = s.name;
  if cardinality(v_positions) = 0 then
    perform events._advance(s.name);
    return;
  end if;

  -- One row per stream, all under this claim's token. A new row's stream is
  -- done up to the old `scanned` (nothing of it was pending there).
  insert into events.subscription_streams as r (subscription, stream, done_version,
    done_position, leased, lease_token, lease_until, locked_by, attempts)
  select s.name, c.stream, min(c.version) - 1, s.scanned,
    array_agg(c.position order by c.position), v_token, v_until, claim_batch.worker, 1
  from unnest(v_positions, v_streams, v_versions) as c (position, stream, version)
  group by c.stream
  on conflict (subscription, stream) do update
    set leased = excluded.leased, lease_token = v_token, lease_until = v_until,
      locked_by = excluded.locked_by, attempts = r.attempts + 1, retry_at = null;

  return query
  select e.position, e.stream, e.type, e.data, e.metadata, e.version, e.created_at,
    r.attempts, v_token, v_until
  from unnest(v_positions) as c (position)
  join events.events e on e.position = c.position
  join events.subscription_streams r on r.subscription = s.name and r.stream = e.stream
  order by c.position;
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
as $$
declare
  v_count integer;
begin
  perform events._lock_subscription(ack.subscription);
  with r as (
    select r.stream, r.leased,
      coalesce((select min(u.i) - 1 from unnest(r.leased) with ordinality u (p, i)
        where not (u.p = any (coalesce(ack.positions, '{}')))), cardinality(r.leased)) as k
    from events.subscription_streams r
    where r.subscription = ack.subscription and r.lease_token = ack.token
  ), upd as (
    update events.subscription_streams x
    set done_position = greatest(x.done_position, r.leased[r.k]),
      done_version = (select e.version from events.events e where e.position = r.leased[r.k]),
      leased = case when r.k < cardinality(r.leased) then r.leased[r.k + 1:] end,
      lease_token = case when r.k < cardinality(r.leased) then x.lease_token end,
      lease_until = case when r.k < cardinality(r.leased) then x.lease_until end,
      locked_by = case when r.k < cardinality(r.leased) then x.locked_by end,
      -- The stream's next event was delivered once already if it is still leased.
      attempts = case when r.k < cardinality(r.leased) then 1 else 0 end,
      last_error = null
    from r
    where x.subscription = ack.subscription and x.stream = r.stream and r.k > 0
    returning r.k
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
as $$
#variable_conflict use_column
declare
  v_count integer;
begin
  perform events._lock_subscription(nack.subscription);
  with r as (
    select r.stream, r.leased, r.attempts,
      (select min(u.i) from unnest(r.leased) with ordinality u (p, i)
        where u.p = any (coalesce(nack.positions, '{}'))) as f
    from events.subscription_streams r
    where r.subscription = nack.subscription and r.lease_token = nack.token
  ), failed as (
    select r.*, r.leased[r.f] as failed_position,
      case when r.f > 1 then r.leased[r.f - 1] end as done_position
    from r where r.f is not null
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

-- Pushes the lease of a claim forward (long handlers call it before it ends).
-- Returns the new deadline, or null when the token no longer holds any stream.
create or replace function events.extend_lease(
  subscription text, token uuid, lease_seconds double precision default 30
) returns timestamptz
language sql volatile security definer set search_path = ''
as $$
  with u as (
    update events.subscription_streams r
    set lease_until = now() + make_interval(secs => least(greatest(lease_seconds, 0.1), 86400))
    where r.subscription = extend_lease.subscription and r.lease_token = extend_lease.token
    returning r.lease_until
  )
  select max(u.lease_until) from u
$$;

-- Hands a claim back without counting the attempt (the worker must stop before
-- handling it): its streams are free again at once. Returns how many streams.
create or replace function events.release(subscription text, token uuid)
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  perform events._lock_subscription(release.subscription);
  update events.subscription_streams r
  set leased = null, lease_token = null, lease_until = null, locked_by = null,
    attempts = greatest(r.attempts - 1, 0)
  where r.subscription = release.subscription and r.lease_token = release.token;
  get diagnostics v_count = row_count;
  perform events._advance(release.subscription);
  return v_count;
end
$$;

-- Unblocks the stream a dead letter holds and delivers that event again (with a
-- fresh attempt count). False when there is no such dead letter.
create or replace function events.retry_dead_letter(subscription text, "position" bigint)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_found boolean;
begin
  perform events._lock_subscription(retry_dead_letter.subscription);
  delete from events.dead_letters d
  where d.subscription = retry_dead_letter.subscription and d.position = retry_dead_letter.position;
  v_found := found;
  update events.subscription_streams r
  set blocked_at = null, attempts = 0, retry_at = null
  where r.subscription = retry_dead_letter.subscription
    and r.blocked_at = retry_dead_letter.position;
  return v_found;
end
$$;

-- Gives up on a dead letter: it counts as handled, its stream moves on past it,
-- and the record goes. False when there is no such dead letter.
create or replace function events.discard_dead_letter(subscription text, "position" bigint)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_version bigint;
begin
  perform events._lock_subscription(discard_dead_letter.subscription);
  delete from events.dead_letters d
  where d.subscription = discard_dead_letter.subscription
    and d.position = discard_dead_letter.position
  returning d.version into v_version;
  if v_version is null then
    return false;
  end if;
  update events.subscription_streams r
  set blocked_at = null, attempts = 0, retry_at = null, last_error = null,
    done_version = greatest(r.done_version, v_version),
    done_position = greatest(r.done_position, discard_dead_letter.position)
  where r.subscription = discard_dead_letter.subscription
    and r.blocked_at = discard_dead_letter.position;
  perform events._advance(discard_dead_letter.subscription);
  return true;
end
$$;

-- A projection's checkpoint (0 when it has none yet). Read it, read the events
-- after it with events.read, write the read model and set_checkpoint in one
-- transaction: the model and its position commit together.
create or replace function events.checkpoint(name text)
returns bigint
language sql stable security definer set search_path = ''
as $$
  select coalesce((select c.position from events.checkpoints c where c.name = checkpoint.name), 0)
$$;

-- Stores a projection's checkpoint. With expected_position, only if the stored one
-- (0 for none) still equals it, else P0409: two copies of a projection cannot
-- both commit the same events (the second waits for the first's row lock, then
-- sees the new position).
create or replace function events.set_checkpoint(
  name text, "position" bigint, expected_position bigint default null
) returns void
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_done boolean;
  v_actual bigint;
begin
  if set_checkpoint.name is null or set_checkpoint.name !~ '^[A-Za-z0-9_.:-]{1,128}$' then
    raise exception 'events: checkpoint name must match [A-Za-z0-9_.:-]{1,128}'
      using errcode = '22023';
  end if;
  if set_checkpoint.position is null or set_checkpoint.position < 0 then
    raise exception 'events: checkpoint position must be >= 0' using errcode = '22023';
  end if;
  if coalesce(expected_position, 0) = 0 then
    insert into events.checkpoints as c (name, position) values (set_checkpoint.name,
      set_checkpoint.position)
    on conflict (name) do update set position = excluded.position, updated_at = now()
      where expected_position is null or c.position = 0;
  else
    update events.checkpoints c set position = set_checkpoint.position, updated_at = now()
    where c.name = set_checkpoint.name and c.position = expected_position;
  end if;
  v_done := found;
  if not v_done then
    v_actual := events.checkpoint(set_checkpoint.name);
    raise exception 'events: checkpoint % is at %, expected %', set_checkpoint.name, v_actual,
      expected_position using errcode = 'P0409';
  end if;
end
$$;

-- The oldest position someone still needs: below every subscription's committed
-- position and every checkpoint, and below the settled bound.
create or replace function events.retention_horizon()
returns bigint
language sql stable security definer set search_path = ''
as $$
  select least(events.settled_bound() - 1,
    (select min(s.position) from events.subscriptions s),
    (select min(c.position) from events.checkpoints c))
$$;

-- Deletes up to max_count events below before_position that every subscription
-- and checkpoint has passed (events.retention_horizon()), oldest first; returns
-- how many. Dead letters keep their own copies. Nothing is archived: copy what
-- you must keep (e.g. with events.read) first.
create or replace function events.prune(before_position bigint, max_count integer default 10000)
returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count bigint;
begin
  if before_position is null then
    raise exception 'events: prune needs a position' using errcode = '22023';
  end if;
  delete from events.events e
  where e.position in (
    select x.position from events.events x
    where x.position < before_position and x.position <= events.retention_horizon()
    order by x.position
    limit least(greatest(coalesce(max_count, 10000), 1), 1000000));
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Deletes events created before now() - older_than, within the same horizon.
create or replace function events.prune(older_than interval, max_count integer default 10000)
returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count bigint;
begin
  if older_than is null then
    raise exception 'events: prune needs an age' using errcode = '22023';
  end if;
  delete from events.events e
  where e.position in (
    select x.position from events.events x
    where x.created_at < now() - older_than and x.position <= events.retention_horizon()
    order by x.position
    limit least(greatest(coalesce(max_count, 10000), 1), 1000000));
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke all on all functions in schema events from public, anon, authenticated;
grant execute on function
  events.subscribe(text, jsonb, text),
  events.unsubscribe(text),
  events.pause(text),
  events.resume(text),
  events.replay(text, bigint),
  events.replay(text, timestamptz),
  events.subscription_status(text),
  events.claim_batch(text, integer, double precision, text),
  events.ack(text, uuid, bigint[]),
  events.nack(text, uuid, bigint[], text, boolean, double precision),
  events.extend_lease(text, uuid, double precision),
  events.release(text, uuid),
  events.retry_dead_letter(text, bigint),
  events.discard_dead_letter(text, bigint),
  events.checkpoint(text),
  events.set_checkpoint(text, bigint, bigint),
  events.retention_horizon(),
  events.prune(bigint, integer),
  events.prune(interval, integer)
to service_role;
