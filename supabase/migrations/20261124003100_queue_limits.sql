-- Limits that keep one bad job from stopping a queue (docs/queue.md, "Limits").
--
-- A claim used to return as many jobs as asked whatever their size; ack_and_claim
-- aggregates a batch into one jsonb, which Postgres caps at 256 MB, so six 50 MB
-- payloads failed every claim of their queue for good, small jobs behind them
-- included. Now:
--   * enqueue refuses a payload over queue.max_payload_bytes() (SQLSTATE 54000),
--     for every path in: enqueue, enqueue_many and the outbox trigger;
--   * a claim takes jobs in order only while their payloads total at most
--     queue.max_claim_bytes() (always at least one job);
--   * a row over the limit that got in anyway (inserted before this migration or
--     straight into the table) is dead-lettered by the claim as `payload_too_large`.
-- Sizes are octets of the payload's JSON text as Postgres prints it: what a worker
-- receives and holds. The stored size is no measure: TOAST compression can shrink
-- a 50 MB payload to 600 kB, and a 10-byte number such as 1e131071 prints as 131072.
--
-- run_at must also be a finite time in years 1..9999: infinite times break the
-- interval arithmetic of stats() (an error before Postgres 17, Infinity after), and
-- JavaScript cannot even print the far ends of Postgres' range.

-- The payload limit. A function, not a setting, so TypeScript, tests and every
-- SQL path agree on one number.
create or replace function queue.max_payload_bytes()
returns integer
language sql immutable security definer set search_path = ''
as $$ select 1048576 $$;

-- The most payload one claim returns: a few jobs at the limit, little enough that
-- a worker in 256 MB and the batch's jsonb (a few times its text) stay far inside
-- their bounds.
create or replace function queue.max_claim_bytes()
returns integer
language sql immutable security definer set search_path = ''
as $$ select 8388608 $$;

-- run_at now goes through the shared checks, so the old signature goes.
drop function if exists queue._check_job(text, jsonb, integer, integer, text, text);

-- Option checks shared by both enqueue forms, before anything is written.
-- 22023 (invalid_parameter_value) names the option; 54000 (program_limit_exceeded)
-- is the payload limit, which callers map to their own "too large" error.
create or replace function queue._check_job(
  job_type text, payload jsonb, priority integer, max_attempts integer, dedupe_key text,
  queue_name text, run_at timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_bytes bigint;
begin
  if job_type is null or char_length(job_type) not between 1 and 200 then
    raise exception 'queue: job_type must be 1..200 characters' using errcode = '22023';
  end if;
  if payload is not null and jsonb_typeof(payload) <> 'object' then
    raise exception 'queue: payload must be a JSON object, got %', jsonb_typeof(payload)
      using errcode = '22023';
  end if;
  v_bytes := octet_length(payload::text);
  if v_bytes > queue.max_payload_bytes() then
    raise exception 'queue: payload too large: % bytes of JSON, the limit is % bytes',
      v_bytes, queue.max_payload_bytes()
      using errcode = '54000', hint = 'Store large data elsewhere (e.g. Storage) and enqueue a reference.';
  end if;
  if priority is not null and priority not between -100 and 100 then
    raise exception 'queue: priority must be between -100 and 100, got %', priority
      using errcode = '22023';
  end if;
  if max_attempts is not null and max_attempts not between 1 and 100 then
    raise exception 'queue: max_attempts must be between 1 and 100, got %', max_attempts
      using errcode = '22023';
  end if;
  if dedupe_key is not null and char_length(dedupe_key) not between 1 and 200 then
    raise exception 'queue: dedupe_key must be 1..200 characters' using errcode = '22023';
  end if;
  if queue_name is not null and queue_name !~ '^[A-Za-z0-9_.:-]{1,64}$' then
    raise exception 'queue: queue_name must match [A-Za-z0-9_.:-]{1,64}' using errcode = '22023';
  end if;
  if run_at is not null
    and not (run_at >= '0001-01-01 00:00:00+00' and run_at < '10000-01-01 00:00:00+00') then
    raise exception 'queue: run_at must be a finite time in years 1..9999 (UTC), got %', run_at
      using errcode = '22023';
  end if;
end
$$;

create or replace function queue.enqueue(
  job_type text,
  payload jsonb default '{}',
  run_at timestamptz default null,
  priority integer default 0,
  max_attempts integer default 5,
  dedupe_key text default null,
  queue_name text default 'default'
) returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_queue text := coalesce(enqueue.queue_name, 'default');
  v_run_at timestamptz := coalesce(enqueue.run_at, now());
  v_id bigint;
begin
  perform queue._check_job(enqueue.job_type, enqueue.payload, enqueue.priority,
    enqueue.max_attempts, enqueue.dedupe_key, v_queue, enqueue.run_at);
  loop
    insert into queue.jobs (queue_name, job_type, payload, priority, run_at, max_attempts,
      dedupe_key)
    values (v_queue, enqueue.job_type, coalesce(enqueue.payload, '{}'),
      coalesce(enqueue.priority, 0), v_run_at, coalesce(enqueue.max_attempts, 5),
      enqueue.dedupe_key)
    on conflict (queue_name, dedupe_key) where dedupe_key is not null do nothing
    returning id into v_id;
    if v_id is not null then
      -- Wakes idle workers (LISTEN queue_jobs); delivered at commit.
      if v_run_at <= now() then
        perform pg_notify('queue_jobs', v_queue);
      end if;
      return v_id;
    end if;
    select j.id into v_id from queue.jobs j
    where j.queue_name = v_queue and j.dedupe_key = enqueue.dedupe_key;
    if v_id is not null then
      return v_id;
    end if;
    -- The job holding the key finished between the two statements: insert again.
  end loop;
end
$$;

create or replace function queue.enqueue_many(jobs jsonb)
returns table (id bigint)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_max integer := queue.max_payload_bytes();
  v_bad jsonb;
  v_n bigint;
  v_ids bigint[];
  v_queues text[];
  v_keys text[];
begin
  if jobs is null or jsonb_typeof(jobs) <> 'array' then
    raise exception 'queue: enqueue_many expects a JSON array' using errcode = '22023';
  end if;
  -- One set-based pass finds the first bad element; only that one goes through
  -- _check_job, which raises the precise message (a call per element is slower).
  select e, n into v_bad, v_n
  from jsonb_array_elements(jobs) with ordinality as x (e, n)
  where jsonb_typeof(e) <> 'object'
    or e ->> 'job_type' is null or char_length(e ->> 'job_type') not between 1 and 200
    or (e ? 'payload' and jsonb_typeof(e -> 'payload') <> 'object')
    or octet_length((e -> 'payload')::text) > v_max
    or (e ->> 'priority')::integer not between -100 and 100
    or (e ->> 'max_attempts')::integer not between 1 and 100
    or char_length(e ->> 'dedupe_key') not between 1 and 200
    or coalesce(e ->> 'queue_name', 'default') !~ '^[A-Za-z0-9_.:-]{1,64}$'
    or jsonb_typeof(e -> 'run_at') not in ('string', 'null')
    or not ((e ->> 'run_at')::timestamptz >= '0001-01-01 00:00:00+00'
      and (e ->> 'run_at')::timestamptz < '10000-01-01 00:00:00+00')
  order by n
  limit 1;
  if v_bad is not null then
    if jsonb_typeof(v_bad -> 'run_at') not in ('string', 'null') then
      raise exception 'queue: run_at of element % must be an ISO 8601 string, got %', v_n,
        jsonb_typeof(v_bad -> 'run_at') using errcode = '22023';
    end if;
    if jsonb_typeof(v_bad) <> 'object' then
      raise exception 'queue: element % must be a JSON object, got %', v_n, jsonb_typeof(v_bad)
        using errcode = '22023';
    end if;
    perform queue._check_job(v_bad ->> 'job_type', v_bad -> 'payload',
      (v_bad ->> 'priority')::integer, (v_bad ->> 'max_attempts')::integer,
      v_bad ->> 'dedupe_key', coalesce(v_bad ->> 'queue_name', 'default'),
      (v_bad ->> 'run_at')::timestamptz);
  end if;

  -- Ids are drawn up front so each input element knows its own id; an element
  -- whose insert was skipped by the dedupe index has no row under that id.
  with input as materialized (
    select e.n, nextval('queue.jobs_id_seq'::regclass) as id, e.j,
      coalesce(e.j ->> 'queue_name', 'default') as q
    from jsonb_array_elements(jobs) with ordinality as e (j, n)
  ), ins as (
    insert into queue.jobs (id, queue_name, job_type, payload, priority, run_at, max_attempts,
      dedupe_key)
    select i.id, i.q, i.j ->> 'job_type', coalesce(i.j -> 'payload', '{}'),
      coalesce((i.j ->> 'priority')::smallint, 0),
      coalesce((i.j ->> 'run_at')::timestamptz, now()),
      coalesce((i.j ->> 'max_attempts')::integer, 5), i.j ->> 'dedupe_key'
    from input i
    order by i.n
    on conflict (queue_name, dedupe_key) where dedupe_key is not null do nothing
    returning id
  )
  select array_agg(ins.id order by i.n), array_agg(i.q order by i.n),
    array_agg(i.j ->> 'dedupe_key' order by i.n)
  into v_ids, v_queues, v_keys
  from input i left join ins on ins.id = i.id;

  perform pg_notify('queue_jobs', q) from (select distinct unnest(v_queues) as q) s;
  if array_position(v_ids, null) is null then
    return query select unnest(v_ids); -- no element was deduplicated: ids are final
    return;
  end if;

  -- A second statement sees the rows the first inserted: within-batch duplicates
  -- resolve to the element that won.
  return query
  select coalesce(x.id, (select j.id from queue.jobs j where j.queue_name = x.q
    and j.dedupe_key = x.k))
  from unnest(v_ids, v_queues, v_keys) with ordinality as x (id, q, k, n)
  order by x.n;
end
$$;

-- The outbox path obeys the same limit. Refusing the write is the only choice that
-- loses nothing: the change and its job commit together or not at all.
create or replace function queue.enqueue_row_change()
returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_type text := tg_argv[0];
  v_queue text := coalesce(tg_argv[1], 'default');
  v_payload jsonb;
  v_bytes bigint;
begin
  if v_type is null then
    raise exception 'queue.enqueue_row_change: pass the job type as the first trigger argument'
      using errcode = '22023';
  end if;
  v_payload := jsonb_build_object(
    'type', tg_op,
    'schema', tg_table_schema,
    'table', tg_table_name,
    'record', case when tg_op = 'DELETE' then null else to_jsonb(new) end,
    'old_record', case when tg_op = 'INSERT' then null else to_jsonb(old) end
  );
  v_bytes := octet_length(v_payload::text);
  if v_bytes > queue.max_payload_bytes() then
    raise exception 'queue: payload too large: % bytes of JSON for a % on %.%, the limit is % bytes',
      v_bytes, tg_op, tg_table_schema, tg_table_name, queue.max_payload_bytes()
      using errcode = '54000',
        hint = 'Enqueue a reference (e.g. the row id) from your own trigger instead of the row.';
  end if;
  insert into queue.jobs (queue_name, job_type, payload) values (v_queue, v_type, v_payload);
  perform pg_notify('queue_jobs', v_queue);
  return null; -- AFTER trigger: the return value is ignored
end
$$;

-- Claims runnable jobs of one queue, highest priority first, then oldest run_at:
-- at most max_jobs, and only while their payloads total at most max_claim_bytes()
-- (the first always fits: no admitted payload exceeds max_payload_bytes()). The
-- materialized CTE pins the LIMIT + SKIP LOCKED row set before the writes;
-- candidates left out by the byte budget are unlocked at commit. A candidate over
-- the payload limit is dead-lettered in the same statement, and if that left the
-- claim empty while runnable jobs remain, it claims again: a drain must not take an
-- empty claim for an empty queue.
create or replace function queue.claim(
  queue_name text default 'default',
  max_jobs integer default 100,
  lease_seconds double precision default 30,
  worker text default null,
  reclaim boolean default true
) returns table (
  id bigint, job_type text, payload jsonb, attempts integer, max_attempts integer,
  priority smallint, lease_token uuid, lease_until timestamptz, created_at timestamptz
)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_max_payload integer := queue.max_payload_bytes();
  v_max_batch integer := queue.max_claim_bytes();
begin
  if claim.max_jobs is null or claim.max_jobs not between 1 and 10000 then
    raise exception 'queue: max_jobs must be between 1 and 10000' using errcode = '22023';
  end if;
  if claim.lease_seconds is null or claim.lease_seconds not between 0.1 and 86400 then
    raise exception 'queue: lease_seconds must be between 0.1 and 86400' using errcode = '22023';
  end if;
  -- Busy workers pass reclaim => false on most calls and sweep about once a second.
  if claim.reclaim then
    perform queue.reclaim_expired(claim.queue_name);
  end if;
  loop
    return query
    with candidates as materialized (
      select j.id, j.priority, j.run_at, octet_length(j.payload::text) as bytes
      from queue.jobs j
      where j.queue_name = claim.queue_name and j.lease_until is null and j.run_at <= now()
      order by j.priority desc, j.run_at, j.id
      limit claim.max_jobs
      for update skip locked
    ), sized as (
      select c.id, c.bytes, c.bytes > v_max_payload as too_big,
        sum(c.bytes) filter (where c.bytes <= v_max_payload) over (
          order by c.priority desc, c.run_at, c.id rows unbounded preceding) as total
      from candidates c
    ), dead as (
      delete from queue.jobs j using sized s
      where j.id = s.id and s.too_big
      returning j.id, j.queue_name, j.job_type, j.payload, j.priority, j.attempts,
        j.max_attempts, j.dedupe_key, j.errors, j.created_at,
        format('payload is %s bytes of JSON, over the limit of %s bytes', s.bytes,
          v_max_payload) as error
    ), buried as (
      insert into queue.dead_letters (id, queue_name, job_type, payload, priority, attempts,
        max_attempts, dedupe_key, reason, last_error, errors, created_at)
      select d.id, d.queue_name, d.job_type, d.payload, d.priority, d.attempts, d.max_attempts,
        d.dedupe_key, 'payload_too_large', d.error,
        d.errors || jsonb_build_array(jsonb_build_object('attempt', d.attempts,
          'error', d.error, 'at', now())),
        d.created_at
      from dead d
      returning 1
    ), claimed as (
      update queue.jobs j
      set attempts = j.attempts + 1,
        lease_until = now() + make_interval(secs => claim.lease_seconds),
        lease_token = gen_random_uuid(),
        locked_by = claim.worker
      from sized s
      where j.id = s.id and not s.too_big and s.total <= v_max_batch
      returning j.id, j.job_type, j.payload, j.attempts, j.max_attempts, j.priority,
        j.lease_token, j.lease_until, j.created_at, j.run_at
    )
    select c.id, c.job_type, c.payload, c.attempts, c.max_attempts, c.priority, c.lease_token,
      c.lease_until, c.created_at
    from claimed c
    order by c.priority desc, c.run_at, c.id;
    exit when found;
    -- Empty: either nothing is runnable, or every candidate was just dead-lettered.
    perform 1 from queue.jobs j
    where j.queue_name = claim.queue_name and j.lease_until is null and j.run_at <= now()
    limit 1
    for update skip locked;
    exit when not found;
  end loop;
end
$$;

-- Depth per queue and state. Reads the whole jobs table: for dashboards and
-- alerts, not for the hot path. Rows with an infinite run_at (only possible by
-- writing the table directly now) are counted but have no age.
create or replace function queue.stats()
returns table (
  queue_name text, runnable bigint, scheduled bigint, running bigint, expired bigint,
  dead_letters bigint, oldest_runnable_age_seconds double precision
)
language sql stable security definer set search_path = ''
as $$
  with j as (
    select j.queue_name,
      count(*) filter (where j.lease_until is null and j.run_at <= now()) as runnable,
      count(*) filter (where j.lease_until is null and j.run_at > now()) as scheduled,
      count(*) filter (where j.lease_until >= now()) as running,
      count(*) filter (where j.lease_until < now()) as expired,
      extract(epoch from now() - min(j.run_at) filter (
        where j.lease_until is null and j.run_at <= now() and isfinite(j.run_at))
      )::double precision as oldest
    from queue.jobs j
    group by j.queue_name
  ), d as (
    select d.queue_name, count(*) as n from queue.dead_letters d group by d.queue_name
  )
  select coalesce(j.queue_name, d.queue_name), coalesce(j.runnable, 0), coalesce(j.scheduled, 0),
    coalesce(j.running, 0), coalesce(j.expired, 0), coalesce(d.n, 0), j.oldest
  from j full join d on d.queue_name = j.queue_name
  order by 1
$$;

revoke all on function
  queue.max_payload_bytes(),
  queue.max_claim_bytes(),
  queue._check_job(text, jsonb, integer, integer, text, text, timestamptz)
from public, anon, authenticated;
grant execute on function queue.max_payload_bytes(), queue.max_claim_bytes() to service_role;
