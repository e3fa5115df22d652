-- Resilience state shared by every Edge Function isolate: rate-limit counters
-- (GCRA) and advisory circuit-breaker state. Schema `resilience` is not exposed
-- through the Data API; only service_role (and the owner) may call its
-- functions, and RLS with deny-all policies keeps its tables closed to everyone else.

create schema if not exists resilience;
revoke all on schema resilience from public;
grant usage on schema resilience to service_role;

-- One row per rate-limit key. GCRA keeps a single number per key: the
-- "theoretical arrival time" (tat_ms, epoch milliseconds) at which the key's
-- quota would be fully replenished. Epoch milliseconds as double precision keep
-- the arithmetic in one statement simple and exact to well under a microsecond.
create table resilience.rate_limits (
  key text primary key,
  tat_ms double precision not null,
  -- Outcome of the latest decision; RETURNING cannot see the row's old values
  -- on Postgres 17, so the decision is stored alongside the new state.
  allowed boolean not null,
  updated_ms double precision not null
);
alter table resilience.rate_limits enable row level security;
-- Explicitly nobody: rows are reached only through the security definer functions below.
create policy "rate_limits: no direct access" on resilience.rate_limits
  as restrictive for all to public using (false) with check (false);
revoke all on resilience.rate_limits from public, anon, authenticated;
comment on table resilience.rate_limits is
  'GCRA state per rate-limit key; rows with tat_ms in the past are equivalent to absent.';

-- One decision = one statement. Concurrent callers of the same key serialise
-- on the row lock taken by ON CONFLICT DO UPDATE, whose SET expressions see the
-- latest committed row, so no two isolates can both spend the last unit.
-- `p_now_ms` exists for tests; callers leave it null (the database clock).
create function resilience.rate_limit(
  p_key text,
  p_limit integer,
  p_period_ms integer,
  p_cost integer default 1,
  p_now_ms double precision default null
)
returns table (allowed boolean, remaining integer, reset_ms integer, retry_after_ms integer)
language sql
volatile
security definer
set search_path = ''
as $$
  with c as (
    select
      coalesce(p_now_ms, extract(epoch from clock_timestamp()) * 1000) as now_ms,
      p_period_ms::double precision / p_limit as t_ms
  )
  insert into resilience.rate_limits as r (key, tat_ms, allowed, updated_ms)
  select
    p_key,
    case when p_cost <= p_limit then c.now_ms + p_cost * c.t_ms else c.now_ms end,
    p_cost <= p_limit,
    c.now_ms
  from c
  on conflict (key) do update set
    -- 0.001 ms of slack absorbs float rounding of limit * (period / limit).
    tat_ms = case
      when greatest(r.tat_ms, excluded.updated_ms) + p_cost * (p_period_ms::double precision / p_limit)
           - excluded.updated_ms <= p_period_ms + 0.001
      then greatest(r.tat_ms, excluded.updated_ms) + p_cost * (p_period_ms::double precision / p_limit)
      else r.tat_ms
    end,
    allowed = greatest(r.tat_ms, excluded.updated_ms)
      + p_cost * (p_period_ms::double precision / p_limit)
      - excluded.updated_ms <= p_period_ms + 0.001,
    updated_ms = excluded.updated_ms
  returning
    r.allowed,
    greatest(0, floor(
      (p_period_ms - greatest(0, r.tat_ms - r.updated_ms)) / (p_period_ms::double precision / p_limit)
      + 0.000001
    ))::integer,
    ceil(greatest(0, r.tat_ms - r.updated_ms))::integer,
    case when r.allowed then 0 else ceil(greatest(0,
      r.tat_ms + p_cost * (p_period_ms::double precision / p_limit) - p_period_ms - r.updated_ms
    ))::integer end
$$;

comment on function resilience.rate_limit is
  'GCRA decision for one key: p_limit units per p_period_ms, bursts up to p_limit.';

-- Rows whose quota has been whole again for a while carry no information.
create function resilience.rate_limit_prune(p_idle interval default interval '1 hour')
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
  with gone as (
    delete from resilience.rate_limits
    where tat_ms < extract(epoch from clock_timestamp() - p_idle) * 1000
    returning 1
  )
  select count(*)::integer from gone
$$;

-- Advisory circuit-breaker state: each isolate decides locally and publishes
-- trips and recoveries here; others read a key at most about once per second.
create table resilience.breaker_states (
  key text primary key,
  state text not null check (state in ('open', 'closed')),
  open_until timestamptz,
  updated_at timestamptz not null default clock_timestamp(),
  -- The isolate that published, so it can ignore its own news.
  updated_by text not null,
  check ((state = 'open') = (open_until is not null))
);
alter table resilience.breaker_states enable row level security;
create policy "breaker_states: no direct access" on resilience.breaker_states
  as restrictive for all to public using (false) with check (false);
revoke all on resilience.breaker_states from public, anon, authenticated;
comment on table resilience.breaker_states is
  'Latest trip or recovery per circuit-breaker key, shared across Edge Function isolates.';

create function resilience.breaker_publish(
  p_key text,
  p_state text,
  p_open_until_ms double precision,
  p_isolate text
)
returns void
language sql
volatile
security definer
set search_path = ''
as $$
  insert into resilience.breaker_states as b (key, state, open_until, updated_at, updated_by)
  values (
    p_key,
    p_state,
    case when p_state = 'open' then to_timestamp(p_open_until_ms / 1000) end,
    clock_timestamp(),
    p_isolate
  )
  on conflict (key) do update set
    state = excluded.state,
    open_until = excluded.open_until,
    updated_at = excluded.updated_at,
    updated_by = excluded.updated_by
$$;

create function resilience.breaker_read(p_keys text[])
returns table (
  key text,
  state text,
  open_until_ms double precision,
  updated_at_ms double precision,
  updated_by text
)
language sql
stable
security definer
set search_path = ''
as $$
  select
    b.key,
    b.state,
    extract(epoch from b.open_until) * 1000,
    extract(epoch from b.updated_at) * 1000,
    b.updated_by
  from resilience.breaker_states b
  where b.key = any (p_keys)
$$;

revoke all on function resilience.rate_limit(text, integer, integer, integer, double precision)
  from public, anon, authenticated;
revoke all on function resilience.rate_limit_prune(interval) from public, anon, authenticated;
revoke all on function resilience.breaker_publish(text, text, double precision, text)
  from public, anon, authenticated;
revoke all on function resilience.breaker_read(text[]) from public, anon, authenticated;
grant execute on function resilience.rate_limit(text, integer, integer, integer, double precision)
  to service_role;
grant execute on function resilience.rate_limit_prune(interval) to service_role;
grant execute on function resilience.breaker_publish(text, text, double precision, text)
  to service_role;
grant execute on function resilience.breaker_read(text[]) to service_role;

-- Prune idle rate-limit rows every 10 minutes where pg_cron is installed
-- (hosted projects that enabled it); elsewhere call resilience.rate_limit_prune().
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    execute $cmd$select cron.schedule(
      'resilience-rate-limit-prune', '*/10 * * * *', 'select resilience.rate_limit_prune()'
    )$cmd$;
  end if;
end
$$;
