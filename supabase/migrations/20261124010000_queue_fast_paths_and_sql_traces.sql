-- Faster claims and batched enqueues, and trace context for jobs enqueued from SQL
-- (docs/queue.md, "Throughput" and "Traces"). Profiled before cutting (issue 13):
--
-- * Claim: gen_random_uuid() per row was ~4 us of the ~22 us a job costs inside
--   Postgres here. A claim now draws one fencing token per call and gives it to
--   every job it leases. The pair (id, token) still names exactly one attempt: a
--   reclaimed job gets the token of its new claim, and every write (complete,
--   fail, release, extend_lease, the workflows fence) matches id AND token.
-- * ack_and_claim returned the batch as jsonb_agg(to_jsonb(row)): encoding 11
--   named columns (two timestamptz among them) cost more per job than the claim.
--   queue.ack_and_claim_packed returns the same jobs as one JSON array of
--   positional arrays [id, job_type, payload, attempts, max_attempts, lease_token,
--   traceparent, tracestate], about a quarter of the encoding work. The worker
--   keeps each job's lease end locally (it knows when it sent the claim), so the
--   lease is not sent back. ack_and_claim stays as it was, for callers that use it.
-- * enqueue_many: the first-bad-element check and the set of queues to notify are
--   one pass (aggregates), and a batch without dedupe keys is a plain INSERT ...
--   SELECT (no ON CONFLICT speculative insertion, no id pre-draw, no join back).
--
-- Traces: a job enqueued from SQL (queue.enqueue, queue.enqueue_many elements
-- without a traceparent, the outbox trigger) now carries the trace of the request
-- that enqueued it: the setting app.traceparent (and app.tracestate) when the
-- caller set one, else the traceparent header of the PostgREST request
-- (request.headers, which PostgREST sets for every request). Read once per
-- statement (per row only in the row trigger). A malformed value is ignored: it
-- never fails the write, and never reaches a worker.

-- The trace context of the current request, or nulls. Only W3C version 00 with
-- non-zero ids is taken (what the traceparent column admits, and what the
-- TypeScript parser accepts); tracestate only with a traceparent, at most 512
-- characters.
create or replace function queue.current_trace(out traceparent text, out tracestate text)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_headers text;
begin
  traceparent := nullif(current_setting('app.traceparent', true), '');
  if traceparent is not null then
    tracestate := nullif(current_setting('app.tracestate', true), '');
  else
    v_headers := current_setting('request.headers', true);
    -- PostgREST writes a JSON object; anything else is not a request's headers.
    if v_headers is not null and left(ltrim(v_headers), 1) = '{' then
      traceparent := v_headers::json ->> 'traceparent';
      tracestate := v_headers::json ->> 'tracestate';
    end if;
  end if;
  if traceparent is null
    or traceparent !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
    or substr(traceparent, 4, 32) = repeat('0', 32)
    or substr(traceparent, 37, 16) = repeat('0', 16) then
    traceparent := null;
    tracestate := null;
  elsif char_length(tracestate) not between 1 and 512 then
    tracestate := null;
  end if;
end
$$;

create or replace function queue.claim(
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
  v_token uuid := gen_random_uuid();
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
        lease_token = v_token,
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

-- The worker's round trip, packed: acknowledges the previous batch and claims the
-- next, returning the jobs as [[id, job_type, payload, attempts, max_attempts,
-- lease_token, traceparent, tracestate], ...] in claim order.
create function queue.ack_and_claim_packed(
  ack_ids bigint[],
  ack_tokens uuid[],
  queue_name text default 'default',
  max_jobs integer default 100,
  lease_seconds double precision default 30,
  worker text default null,
  reclaim boolean default true,
  lease_by_type jsonb default null
) returns table (acked integer, jobs json)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  acked := case when cardinality(ack_ids) > 0 then queue.complete(ack_ids, ack_tokens) else 0 end;
  select coalesce(json_agg(json_build_array(c.id, c.job_type, c.payload, c.attempts,
      c.max_attempts, c.lease_token, c.traceparent, c.tracestate) order by c.n), '[]'::json)
  into jobs
  from queue.claim(ack_and_claim_packed.queue_name, ack_and_claim_packed.max_jobs,
    ack_and_claim_packed.lease_seconds, ack_and_claim_packed.worker,
    ack_and_claim_packed.reclaim, ack_and_claim_packed.lease_by_type)
    with ordinality as c (id, job_type, payload, attempts, max_attempts, priority, lease_token,
      lease_until, created_at, traceparent, tracestate, n);
  return next;
end
$$;

-- One job; as *_queue_limits.sql wrote it, storing the current trace.
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
  v_trace record;
  v_id bigint;
begin
  perform queue._check_job(enqueue.job_type, enqueue.payload, enqueue.priority,
    enqueue.max_attempts, enqueue.dedupe_key, v_queue, enqueue.run_at);
  v_trace := queue.current_trace();
  loop
    insert into queue.jobs (queue_name, job_type, payload, priority, run_at, max_attempts,
      dedupe_key, traceparent, tracestate)
    values (v_queue, enqueue.job_type, coalesce(enqueue.payload, '{}'),
      coalesce(enqueue.priority, 0), v_run_at, coalesce(enqueue.max_attempts, 5),
      enqueue.dedupe_key, v_trace.traceparent, v_trace.tracestate)
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

-- The batch form. Errors are those of *_queue_lease_per_type_and_trace.sql, raised
-- for the first bad element before anything is written. An element's own
-- traceparent (and tracestate) wins over the current trace.
create or replace function queue.enqueue_many(jobs jsonb)
returns table (id bigint)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_max integer := queue.max_payload_bytes();
  v_n bigint;
  v_bad jsonb;
  v_dedupe boolean;
  v_notify text[];
  v_trace record;
  v_ids bigint[];
  v_queues text[];
  v_keys text[];
begin
  if jobs is null or jsonb_typeof(jobs) <> 'array' then
    raise exception 'queue: enqueue_many expects a JSON array' using errcode = '22023';
  end if;
  -- One pass: the first bad element, whether any element has a dedupe key, and the
  -- queues to wake.
  select min(n) filter (where jsonb_typeof(e) <> 'object'
      or e ->> 'job_type' is null or char_length(e ->> 'job_type') not between 1 and 200
      or (e ? 'payload' and jsonb_typeof(e -> 'payload') <> 'object')
      or octet_length((e -> 'payload')::text) > v_max
      or (e ->> 'priority')::integer not between -100 and 100
      or (e ->> 'max_attempts')::integer not between 1 and 100
      or char_length(e ->> 'dedupe_key') not between 1 and 200
      or jsonb_typeof(e -> 'run_at') not in ('string', 'null')
      or not ((e ->> 'run_at')::timestamptz >= '0001-01-01 00:00:00+00'
        and (e ->> 'run_at')::timestamptz < '10000-01-01 00:00:00+00')
      or (e ->> 'traceparent') !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
      or char_length(e ->> 'tracestate') not between 1 and 512),
    bool_or(e ->> 'dedupe_key' is not null),
    array_agg(distinct coalesce(e ->> 'queue_name', 'default'))
  into v_n, v_dedupe, v_notify
  from jsonb_array_elements(jobs) with ordinality as x (e, n);
  -- Queue names are matched once per distinct name (a batch has one or a few), and
  -- per element only when one of them is bad, to find the first element using it.
  if exists (select 1 from unnest(v_notify) as q where q !~ queue.queue_name_pattern()) then
    select least(v_n, min(n)) into v_n
    from jsonb_array_elements(jobs) with ordinality as x (e, n)
    where coalesce(e ->> 'queue_name', 'default') !~ queue.queue_name_pattern();
  end if;
  if v_n is not null then
    v_bad := jobs -> (v_n - 1)::integer;
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
  v_trace := queue.current_trace();
  perform pg_notify('queue_jobs', q) from unnest(v_notify) as q;

  if not coalesce(v_dedupe, false) then
    -- Ids come from the sequence in input order, so ordering by id is input order.
    return query
    with ins as (
      insert into queue.jobs (queue_name, job_type, payload, priority, run_at, max_attempts,
        traceparent, tracestate)
      select coalesce(e ->> 'queue_name', 'default'), e ->> 'job_type',
        coalesce(e -> 'payload', '{}'), coalesce((e ->> 'priority')::smallint, 0),
        coalesce((e ->> 'run_at')::timestamptz, now()),
        coalesce((e ->> 'max_attempts')::integer, 5),
        coalesce(e ->> 'traceparent', v_trace.traceparent),
        case when e ->> 'traceparent' is null then v_trace.tracestate else e ->> 'tracestate' end
      from jsonb_array_elements(jobs) with ordinality as x (e, n)
      order by n
      returning id
    )
    select ins.id from ins order by ins.id;
    return;
  end if;

  -- Dedupe keys: ids are drawn up front so each input element knows its own id; an
  -- element whose insert was skipped by the dedupe index has no row under that id.
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
      coalesce(i.j ->> 'traceparent', v_trace.traceparent),
      case when i.j ->> 'traceparent' is null then v_trace.tracestate else i.j ->> 'tracestate' end
    from input i
    order by i.n
    on conflict (queue_name, dedupe_key) where dedupe_key is not null do nothing
    returning id
  )
  select array_agg(ins.id order by i.n), array_agg(i.q order by i.n),
    array_agg(i.j ->> 'dedupe_key' order by i.n)
  into v_ids, v_queues, v_keys
  from input i left join ins on ins.id = i.id;

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

-- The outbox trigger, as *_queue_limits.sql wrote it, storing the current trace.
create or replace function queue.enqueue_row_change()
returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_type text := tg_argv[0];
  v_queue text := coalesce(tg_argv[1], 'default');
  v_payload jsonb;
  v_bytes bigint;
  v_trace record;
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
    raise exception
      'queue: payload too large: % bytes of JSON for a % on %.%, the limit is % bytes',
      v_bytes, tg_op, tg_table_schema, tg_table_name, queue.max_payload_bytes()
      using errcode = '54000',
        hint = 'Enqueue a reference (e.g. the row id) from your own trigger instead of the row.';
  end if;
  v_trace := queue.current_trace();
  insert into queue.jobs (queue_name, job_type, payload, traceparent, tracestate)
  values (v_queue, v_type, v_payload, v_trace.traceparent, v_trace.tracestate);
  perform pg_notify('queue_jobs', v_queue);
  return null; -- AFTER trigger: the return value is ignored
end
$$;

revoke all on function
  queue.current_trace(),
  queue.ack_and_claim_packed(bigint[], uuid[], text, integer, double precision, text, boolean,
    jsonb)
from public, anon, authenticated;
grant execute on function
  queue.current_trace(),
  queue.ack_and_claim_packed(bigint[], uuid[], text, integer, double precision, text, boolean,
    jsonb)
to service_role;
