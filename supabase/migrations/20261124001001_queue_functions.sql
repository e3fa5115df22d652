-- The queue's SQL API (docs/queue.md). Every function: security definer (callers
-- need no table privileges), `search_path = ''` (every name schema-qualified, so
-- a caller's search_path cannot hijack it), EXECUTE for service_role only.
--
-- Round trips bound throughput, so every write is set-based: claim N rows in one
-- statement, complete/fail/extend arrays of (id, token) pairs with unnest.

-- Option checks shared by both enqueue forms. Raises 22023 (invalid_parameter_value)
-- with a message naming the option, before anything is written.
create or replace function queue._check_job(
  job_type text, payload jsonb, priority integer, max_attempts integer, dedupe_key text,
  queue_name text
) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if job_type is null or char_length(job_type) not between 1 and 200 then
    raise exception 'queue: job_type must be 1..200 characters' using errcode = '22023';
  end if;
  if payload is not null and jsonb_typeof(payload) <> 'object' then
    raise exception 'queue: payload must be a JSON object, got %', jsonb_typeof(payload)
      using errcode = '22023';
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
end
$$;

-- Enqueues one job and returns its id. With a dedupe_key that a live job of the
-- same queue already holds, nothing is inserted and that job's id is returned.
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
    enqueue.max_attempts, enqueue.dedupe_key, v_queue);
  loop
    insert into queue.jobs (queue_name, job_type, payload, priority, run_at, max_attempts,
      dedupe_key)
    values (v_queue, enqueue.job_type, coalesce(enqueue.payload, '{}'),
      coalesce(enqueue.priority, 0), v_run_at, coalesce(enqueue.max_attempts, 5),
      enqueue.dedupe_key)
    on conflict (queue_name, dedupe_key) where dedupe_key is not null do nothing
    returning id into v_id;
    if v_id is not null then
      -- Wakes idle workers (LISTEN queue_jobs) instead of making them poll; delivered
      -- at commit, so a worker never sees a job that is not there yet.
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

-- Enqueues many jobs in one statement: a JSON array of objects with the keys
-- job_type, payload, run_at, priority, max_attempts, dedupe_key, queue_name.
-- Returns one id per element, in input order (deduplicated elements return the
-- live job's id, also for duplicates within the same batch).
create or replace function queue.enqueue_many(jobs jsonb)
returns table (id bigint)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ids bigint[];
  v_queues text[];
  v_keys text[];
begin
  if jobs is null or jsonb_typeof(jobs) <> 'array' then
    raise exception 'queue: enqueue_many expects a JSON array' using errcode = '22023';
  end if;
  -- One set-based pass finds the first bad element; only that one goes through
  -- _check_job, which raises the precise message (a call per element is slower).
  perform queue._check_job(e ->> 'job_type', e -> 'payload', (e ->> 'priority')::integer,
    (e ->> 'max_attempts')::integer, e ->> 'dedupe_key', coalesce(e ->> 'queue_name', 'default'))
  from (
    select e from jsonb_array_elements(jobs) as e
    where jsonb_typeof(e) <> 'object'
      or e ->> 'job_type' is null or char_length(e ->> 'job_type') not between 1 and 200
      or (e ? 'payload' and jsonb_typeof(e -> 'payload') <> 'object')
      or (e ->> 'priority')::integer not between -100 and 100
      or (e ->> 'max_attempts')::integer not between 1 and 100
      or char_length(e ->> 'dedupe_key') not between 1 and 200
      or coalesce(e ->> 'queue_name', 'default') !~ '^[A-Za-z0-9_.:-]{1,64}$'
    limit 1
  ) as bad;

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

-- Returns expired leases to the queue (or to dead_letters once attempts are
-- spent: a job that keeps killing its worker must not loop forever). Claim calls
-- it, so no separate sweeper is needed. SKIP LOCKED: concurrent callers split work.
create or replace function queue.reclaim_expired(
  queue_name text default null,
  max_jobs integer default 1000
) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_count integer;
begin
  with expired as materialized (
    select j.id, j.attempts >= j.max_attempts as exhausted
    from queue.jobs j
    where j.lease_until < now()
      and (reclaim_expired.queue_name is null or j.queue_name = reclaim_expired.queue_name)
    order by j.lease_until
    limit reclaim_expired.max_jobs
    for update skip locked
  ), dead as (
    delete from queue.jobs j using expired e
    where j.id = e.id and e.exhausted
    returning j.*
  ), buried as (
    insert into queue.dead_letters (id, queue_name, job_type, payload, priority, attempts,
      max_attempts, dedupe_key, reason, last_error, errors, created_at)
    select d.id, d.queue_name, d.job_type, d.payload, d.priority, d.attempts, d.max_attempts,
      d.dedupe_key, 'lease_expired', 'lease expired',
      d.errors || jsonb_build_array(jsonb_build_object('attempt', d.attempts,
        'error', 'lease expired', 'at', now())),
      d.created_at
    from dead d
    returning 1
  ), back as (
    update queue.jobs j
    set lease_until = null, lease_token = null, locked_by = null, run_at = now(),
      errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempts,
        'error', 'lease expired', 'at', now()))
    from expired e
    where j.id = e.id and not e.exhausted
    returning 1
  )
  select ((select count(*) from buried) + (select count(*) from back))::integer into v_count;
  return v_count;
end
$$;

-- Claims up to max_jobs runnable jobs of one queue, highest priority first, then
-- oldest run_at. The materialized CTE pins the LIMIT + SKIP LOCKED row set before
-- the UPDATE (an inlined subquery may be re-evaluated and claim more rows than
-- asked); SKIP LOCKED lets concurrent workers take disjoint rows without waiting.
-- Each claimed row gets attempts + 1, a lease and a fresh fencing token.
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
  return query
  with candidates as materialized (
    select j.id
    from queue.jobs j
    where j.queue_name = claim.queue_name and j.lease_until is null and j.run_at <= now()
    order by j.priority desc, j.run_at, j.id
    limit claim.max_jobs
    for update skip locked
  ), claimed as (
    update queue.jobs j
    set attempts = j.attempts + 1,
      lease_until = now() + make_interval(secs => claim.lease_seconds),
      lease_token = gen_random_uuid(),
      locked_by = claim.worker
    from candidates c
    where j.id = c.id
    returning j.id, j.job_type, j.payload, j.attempts, j.max_attempts, j.priority,
      j.lease_token, j.lease_until, j.created_at, j.run_at
  )
  select c.id, c.job_type, c.payload, c.attempts, c.max_attempts, c.priority, c.lease_token,
    c.lease_until, c.created_at
  from claimed c
  order by c.priority desc, c.run_at, c.id;
end
$$;

-- Completes jobs whose (id, token) pair still matches: a worker whose lease was
-- reclaimed holds an old token and changes nothing. Completed jobs are deleted.
-- Returns how many were completed.
create or replace function queue.complete(ids bigint[], tokens uuid[])
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  delete from queue.jobs j
  using unnest(ids, tokens) as a (id, token)
  where j.id = a.id and j.lease_token = a.token;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Fails jobs whose token still matches. Each either goes back to the queue after
-- a capped exponential backoff with full jitter (random() * min(cap, base * 2^(n-1)),
-- which spreads a thundering herd of retries evenly), or, when attempts are spent
-- or the error is not retryable, moves to dead_letters in the same statement with
-- its payload, attempts and every error. Optional arrays run parallel to ids.
create or replace function queue.fail(
  ids bigint[],
  tokens uuid[],
  errors text[],
  retryable boolean[] default null,
  reasons text[] default null,
  backoff_base_ms integer[] default null,
  backoff_max_ms integer[] default null
) returns table (id bigint, outcome text, run_at timestamptz)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
  with input as (
    select *
    from unnest(fail.ids, fail.tokens, fail.errors, fail.retryable, fail.reasons,
      fail.backoff_base_ms, fail.backoff_max_ms)
      as a (id, token, error, retryable, reason, base_ms, max_ms)
  ), target as materialized (
    select j.id,
      coalesce(i.retryable, true) and j.attempts < j.max_attempts as again,
      case when coalesce(i.retryable, true) then 'attempts_exhausted'
        else coalesce(i.reason, 'non_retryable') end as reason,
      left(coalesce(i.error, 'unknown error'), 4000) as error,
      jsonb_build_array(jsonb_build_object('attempt', j.attempts,
        'error', left(coalesce(i.error, 'unknown error'), 4000), 'at', now())) as entry,
      random() * least(greatest(coalesce(i.max_ms, 3600000), 0)::double precision,
        greatest(coalesce(i.base_ms, 1000), 0) * power(2, least(greatest(j.attempts - 1, 0), 40)))
        as delay_ms
    from queue.jobs j
    join input i on j.id = i.id and j.lease_token = i.token
    for update of j
  ), dead as (
    delete from queue.jobs j using target t
    where j.id = t.id and not t.again
    returning j.id, j.queue_name, j.job_type, j.payload, j.priority, j.attempts, j.max_attempts,
      j.dedupe_key, t.reason, t.error, j.errors || t.entry as errors, j.created_at
  ), buried as (
    insert into queue.dead_letters (id, queue_name, job_type, payload, priority, attempts,
      max_attempts, dedupe_key, reason, last_error, errors, created_at)
    select d.id, d.queue_name, d.job_type, d.payload, d.priority, d.attempts, d.max_attempts,
      d.dedupe_key, d.reason, d.error, d.errors, d.created_at
    from dead d
    returning id
  ), retried as (
    update queue.jobs j
    set lease_until = null, lease_token = null, locked_by = null,
      run_at = now() + make_interval(secs => t.delay_ms / 1000.0),
      errors = j.errors || t.entry
    from target t
    where j.id = t.id and t.again
    returning j.id, j.run_at
  )
  select r.id, 'retried'::text, r.run_at from retried r
  union all
  select b.id, 'dead_lettered'::text, null::timestamptz from buried b;
end
$$;

-- Hands claimed jobs back without counting the attempt: a worker that must stop
-- (its wall-clock budget is spent) returns what it has not started, so those jobs
-- run again at once elsewhere instead of waiting for their lease to expire.
create or replace function queue.release(ids bigint[], tokens uuid[])
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  update queue.jobs j
  set lease_until = null, lease_token = null, locked_by = null, run_at = now(),
    attempts = greatest(j.attempts - 1, 0)
  from unnest(ids, tokens) as a (id, token)
  where j.id = a.id and j.lease_token = a.token;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Pushes the lease of running jobs forward (long jobs call it before their lease
-- ends). Only pairs whose token still matches are extended; returns those.
create or replace function queue.extend_lease(
  ids bigint[],
  tokens uuid[],
  lease_seconds double precision default 30
) returns table (id bigint, lease_until timestamptz)
language sql volatile security definer set search_path = ''
as $$
  update queue.jobs j
  set lease_until = now() + make_interval(secs => least(greatest(lease_seconds, 0.1), 86400))
  from unnest(ids, tokens) as a (id, token)
  where j.id = a.id and j.lease_token = a.token
  returning j.id, j.lease_until
$$;

-- The worker's round trip: acknowledges the previous batch and claims the next
-- in one statement. Returns the number acknowledged and the claimed jobs as JSON.
create or replace function queue.ack_and_claim(
  ack_ids bigint[],
  ack_tokens uuid[],
  queue_name text default 'default',
  max_jobs integer default 100,
  lease_seconds double precision default 30,
  worker text default null,
  reclaim boolean default true
) returns table (acked integer, jobs jsonb)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  acked := case when cardinality(ack_ids) > 0 then queue.complete(ack_ids, ack_tokens) else 0 end;
  select coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb) into jobs
  from queue.claim(ack_and_claim.queue_name, ack_and_claim.max_jobs,
    ack_and_claim.lease_seconds, ack_and_claim.worker, ack_and_claim.reclaim) as c;
  return next;
end
$$;

-- Moves a dead letter back into the queue under its old id with a fresh attempt
-- budget; its error history is kept. Fails (unique violation, nothing changed) if
-- a live job of the same queue holds its dedupe_key.
create or replace function queue.requeue_dead_letter(
  id bigint,
  run_at timestamptz default null,
  max_attempts integer default null
) returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_id bigint;
  v_queue text;
begin
  with dl as (
    delete from queue.dead_letters d where d.id = requeue_dead_letter.id returning d.*
  )
  insert into queue.jobs (id, queue_name, job_type, payload, priority, run_at, attempts,
    max_attempts, dedupe_key, errors, created_at)
  select dl.id, dl.queue_name, dl.job_type, dl.payload, dl.priority,
    coalesce(requeue_dead_letter.run_at, now()), 0,
    coalesce(requeue_dead_letter.max_attempts, dl.max_attempts), dl.dedupe_key, dl.errors,
    dl.created_at
  from dl
  returning id, queue_name into v_id, v_queue;
  if v_id is null then
    raise exception 'queue: no dead letter with id %', requeue_dead_letter.id
      using errcode = 'P0002';
  end if;
  perform pg_notify('queue_jobs', v_queue);
  return v_id;
end
$$;

-- Depth per queue and state. Reads the whole jobs table: for dashboards and
-- alerts, not for the hot path.
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
        where j.lease_until is null and j.run_at <= now()))::double precision as oldest
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

-- Functions are executable by PUBLIC by default: take that away, then grant the
-- API (not the internal helper) to service_role only.
revoke all on all functions in schema queue from public, anon, authenticated;
grant execute on function
  queue.enqueue(text, jsonb, timestamptz, integer, integer, text, text),
  queue.enqueue_many(jsonb),
  queue.reclaim_expired(text, integer),
  queue.claim(text, integer, double precision, text, boolean),
  queue.complete(bigint[], uuid[]),
  queue.fail(bigint[], uuid[], text[], boolean[], text[], integer[], integer[]),
  queue.extend_lease(bigint[], uuid[], double precision),
  queue.release(bigint[], uuid[]),
  queue.ack_and_claim(bigint[], uuid[], text, integer, double precision, text, boolean),
  queue.requeue_dead_letter(bigint, timestamptz, integer),
  queue.stats()
to service_role;
