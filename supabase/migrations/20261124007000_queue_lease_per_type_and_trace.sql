-- Per-job leases and trace context (docs/queue.md, "Surviving the platform" and
-- "Traces").
--
-- Leases: a claim used to give every job the same lease, long enough for the
-- slowest type of the worker's registry, so a 5 s job whose worker died waited
-- out a lease sized for 30 s jobs before anyone could claim it again. The claim
-- now takes lease_by_type, {"<job_type>": seconds}, and leases each job for its
-- own type (lease_seconds stays the lease of types not named there).
--
-- Trace context: queue.jobs keeps the W3C `traceparent` (and `tracestate`) of the
-- span that enqueued the job, so its runs log under the same trace id. The claim
-- returns both; enqueue_many reads them from each element. Both columns are
-- checked, so a malformed value can never reach a worker's header.
--
-- claim and ack_and_claim gain a parameter and a result column: the old
-- signatures are dropped, since a second overload would make existing calls
-- ambiguous. Leading parameters keep their names, order and defaults.

alter table queue.jobs
  add column traceparent text
    constraint jobs_traceparent_check
      check (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'),
  add column tracestate text
    constraint jobs_tracestate_check check (char_length(tracestate) between 1 and 512);

drop function queue.ack_and_claim(bigint[], uuid[], text, integer, double precision, text, boolean);
drop function queue.claim(text, integer, double precision, text, boolean);

-- Claims runnable jobs of one queue, as *_queue_limits.sql describes (priority,
-- then run_at; at most max_jobs and max_claim_bytes(); oversized payloads
-- dead-lettered), leasing each job for lease_by_type ->> job_type seconds, else
-- lease_seconds.
create function queue.claim(
  queue_name text default 'default',
  max_jobs integer default 100,
  lease_seconds double precision default 30,
  worker text default null,
  reclaim boolean default true,
  lease_by_type jsonb default null
) returns table (
  id bigint, job_type text, payload jsonb, attempts integer, max_attempts integer,
  priority smallint, lease_token uuid, lease_until timestamptz, created_at timestamptz,
  traceparent text, tracestate text
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
  if claim.lease_by_type is not null and (jsonb_typeof(claim.lease_by_type) <> 'object'
      or exists (select 1 from jsonb_each(claim.lease_by_type) e
        where case when jsonb_typeof(e.value) = 'number'
          then (e.value)::text::double precision not between 0.1 and 86400 else true end)) then
    raise exception 'queue: lease_by_type must map job types to seconds between 0.1 and 86400'
      using errcode = '22023';
  end if;
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
        lease_until = now() + make_interval(secs => coalesce(
          (claim.lease_by_type ->> j.job_type)::double precision, claim.lease_seconds)),
        lease_token = gen_random_uuid(),
        locked_by = claim.worker
      from sized s
      where j.id = s.id and not s.too_big and s.total <= v_max_batch
      returning j.id, j.job_type, j.payload, j.attempts, j.max_attempts, j.priority,
        j.lease_token, j.lease_until, j.created_at, j.run_at, j.traceparent, j.tracestate
    )
    select c.id, c.job_type, c.payload, c.attempts, c.max_attempts, c.priority, c.lease_token,
      c.lease_until, c.created_at, c.traceparent, c.tracestate
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

-- The worker's round trip: acknowledges the previous batch and claims the next
-- in one statement. Returns the number acknowledged and the claimed jobs as JSON.
create function queue.ack_and_claim(
  ack_ids bigint[],
  ack_tokens uuid[],
  queue_name text default 'default',
  max_jobs integer default 100,
  lease_seconds double precision default 30,
  worker text default null,
  reclaim boolean default true,
  lease_by_type jsonb default null
) returns table (acked integer, jobs jsonb)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  acked := case when cardinality(ack_ids) > 0 then queue.complete(ack_ids, ack_tokens) else 0 end;
  select coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb) into jobs
  from queue.claim(ack_and_claim.queue_name, ack_and_claim.max_jobs,
    ack_and_claim.lease_seconds, ack_and_claim.worker, ack_and_claim.reclaim,
    ack_and_claim.lease_by_type) as c;
  return next;
end
$$;

-- The batch form, as *_queue_name_domain.sql wrote it, storing each element's
-- optional traceparent and tracestate (a malformed one is refused with 22023,
-- naming the element, before anything is written).
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
    or (e ->> 'traceparent') !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
    or char_length(e ->> 'tracestate') not between 1 and 512
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
    if (v_bad ->> 'traceparent') !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
      or char_length(v_bad ->> 'tracestate') not between 1 and 512 then
      raise exception 'queue: element % has a malformed traceparent or tracestate '
        '(W3C Trace Context, version 00; tracestate up to 512 characters)', v_n
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
      dedupe_key, traceparent, tracestate)
    select i.id, i.q, i.j ->> 'job_type', coalesce(i.j -> 'payload', '{}'),
      coalesce((i.j ->> 'priority')::smallint, 0),
      coalesce((i.j ->> 'run_at')::timestamptz, now()),
      coalesce((i.j ->> 'max_attempts')::integer, 5), i.j ->> 'dedupe_key',
      i.j ->> 'traceparent', i.j ->> 'tracestate'
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

revoke all on function
  queue.claim(text, integer, double precision, text, boolean, jsonb),
  queue.ack_and_claim(bigint[], uuid[], text, integer, double precision, text, boolean, jsonb)
from public, anon, authenticated;
grant execute on function
  queue.claim(text, integer, double precision, text, boolean, jsonb),
  queue.ack_and_claim(bigint[], uuid[], text, integer, double precision, text, boolean, jsonb)
to service_role;
