-- One definition of a queue name. The pattern used to stand in five places (the
-- jobs table's check constraint, and both enqueue forms in two migrations); now it
-- is queue.queue_name_pattern(), the domain queue.queue_name checks with it, and
-- the enqueue checks use it. TypeScript holds the same pattern once (QUEUE_NAME in
-- supabase/functions/_shared/queue/job.ts).
--
-- Errors do not change: a bad name given to enqueue or enqueue_many still raises
-- 22023 naming the option before anything is written; a row written straight into
-- queue.jobs with a bad name fails the domain's check (23514), as the old
-- constraint did.

-- A function, like queue.max_payload_bytes(), so the pattern is written once. It
-- is immutable with no arguments: the planner folds each call to a constant, so
-- checking a name costs what the inline pattern did.
create or replace function queue.queue_name_pattern()
returns text
language sql immutable security definer set search_path = ''
as $$ select '^[A-Za-z0-9_.:-]{1,64}$' $$;

create domain queue.queue_name as text
  constraint queue_name_check check (value ~ queue.queue_name_pattern());

alter table queue.jobs drop constraint jobs_queue_name_check;
alter table queue.jobs alter column queue_name type queue.queue_name;

-- The option checks and the batch form, as *_queue_limits.sql wrote them, with
-- the pattern replaced by queue.queue_name_pattern().
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
  if queue_name is not null and queue_name !~ queue.queue_name_pattern() then
    raise exception 'queue: queue_name must match [A-Za-z0-9_.:-]{1,64}' using errcode = '22023';
  end if;
  if run_at is not null
    and not (run_at >= '0001-01-01 00:00:00+00' and run_at < '10000-01-01 00:00:00+00') then
    raise exception 'queue: run_at must be a finite time in years 1..9999 (UTC), got %', run_at
      using errcode = '22023';
  end if;
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
    or coalesce(e ->> 'queue_name', 'default') !~ queue.queue_name_pattern()
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

revoke all on function queue.queue_name_pattern() from public, anon, authenticated;
grant execute on function queue.queue_name_pattern() to service_role;
