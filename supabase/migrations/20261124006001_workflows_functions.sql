-- The workflows SQL API (docs/workflows.md). Public: start, status, signal, cancel,
-- retry. Worker side (called by the engine with its job's id and lease token):
-- begin, record_step, record_compensation, advance. Errors in arguments raise
-- 22023 (invalid_parameter_value) before anything is written.

-- The job that drives a run: at most one live job per run (the queue's dedupe key).
create or replace function workflows._enqueue_run(p_run_id bigint)
returns bigint
language sql volatile security definer set search_path = ''
as $$
  select queue.enqueue('workflow.run', jsonb_build_object('runId', p_run_id),
    max_attempts => 100, dedupe_key => 'workflow:' || p_run_id)
$$;

-- Wakes a run's job now (a signal, a cancel), unless a worker holds it: that
-- worker's own advance sees the change (it locks the run row).
create or replace function workflows._wake(p_run_id bigint)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  update queue.jobs j set run_at = now()
  where j.queue_name = 'default' and j.dedupe_key = 'workflow:' || p_run_id
    and j.lease_token is null and j.run_at > now();
  if found then
    perform pg_notify('queue_jobs', 'default');
  end if;
end
$$;

-- Locks a run's live job row (if any) before the run row: the order every worker
-- write takes (fence, then run), so a signal or cancel never deadlocks with it.
create or replace function workflows._lock_job(p_run_id bigint)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform 1 from queue.jobs j
  where j.queue_name = 'default' and j.dedupe_key = 'workflow:' || p_run_id
  for update;
end
$$;

-- The fence: true when job p_job_id still holds lease p_token for run p_run_id.
-- It locks the job row, so the queue cannot reclaim it while the caller writes.
create or replace function workflows._fence(p_run_id bigint, p_job_id bigint, p_token uuid)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform 1 from queue.jobs j
  where j.id = p_job_id and j.lease_token = p_token and j.lease_until > now()
    and j.dedupe_key = 'workflow:' || p_run_id
  for update;
  return found;
end
$$;

create or replace function workflows.start(
  workflow_name text,
  input jsonb,
  idempotency_key text default null,
  owner_id uuid default null,
  traceparent text default null
) returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_id bigint;
begin
  if workflow_name is null or workflow_name !~ '^[A-Za-z0-9_.:-]{1,200}$' then
    raise exception 'workflows: workflow_name must match [A-Za-z0-9_.:-]{1,200}'
      using errcode = '22023';
  end if;
  if input is null or jsonb_typeof(input) <> 'object' then
    raise exception 'workflows: input must be a JSON object, got %',
      coalesce(jsonb_typeof(input), 'null') using errcode = '22023';
  end if;
  if octet_length(input::text) > queue.max_payload_bytes() then
    raise exception 'workflows: input is larger than % bytes of JSON', queue.max_payload_bytes()
      using errcode = '54000';
  end if;
  if idempotency_key is not null and char_length(idempotency_key) not between 1 and 200 then
    raise exception 'workflows: idempotency_key must be 1..200 characters' using errcode = '22023';
  end if;
  insert into workflows.runs (workflow_name, input, idempotency_key, owner_id, traceparent)
  values (start.workflow_name, start.input, start.idempotency_key, start.owner_id,
    left(start.traceparent, 200))
  on conflict (workflow_name, idempotency_key) where idempotency_key is not null do nothing
  returning id into v_id;
  if v_id is null then
    -- Same key: the run it started (even when it has finished).
    select r.id into v_id from workflows.runs r
    where r.workflow_name = start.workflow_name and r.idempotency_key = start.idempotency_key;
    return v_id;
  end if;
  perform workflows._enqueue_run(v_id);
  return v_id;
end
$$;

create or replace function workflows.status(run_id bigint)
returns jsonb
language sql stable security definer set search_path = ''
as $$
  -- Nulls are stripped from the run's own fields and the steps, never from its output.
  select jsonb_strip_nulls(jsonb_build_object(
    'id', r.id, 'workflow', r.workflow_name, 'status', r.status,
    'error', r.error, 'createdAt', r.created_at, 'finishedAt', r.finished_at,
    'steps', coalesce((
      select jsonb_agg(jsonb_build_object('name', s.name, 'kind', s.kind, 'status', s.status,
        'attempts', s.attempts, 'error', s.error,
        'compensation', s.compensation_status,
        'compensationAttempts', s.compensation_attempts,
        'compensationError', s.compensation_error) order by s.seq)
      from workflows.steps s where s.run_id = r.id), '[]'::jsonb)))
    || case when r.output is null then '{}'::jsonb else jsonb_build_object('output', r.output) end
  from workflows.runs r where r.id = status.run_id
$$;

create or replace function workflows.signal(
  run_id bigint,
  event text,
  payload jsonb default '{}'
) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_status text;
begin
  if event is null or char_length(event) not between 1 and 200 then
    raise exception 'workflows: event must be 1..200 characters' using errcode = '22023';
  end if;
  if payload is not null and octet_length(payload::text) > queue.max_payload_bytes() then
    raise exception 'workflows: payload is larger than % bytes of JSON', queue.max_payload_bytes()
      using errcode = '54000';
  end if;
  perform workflows._lock_job(signal.run_id);
  select r.status into v_status from workflows.runs r where r.id = signal.run_id for update;
  if v_status is null or v_status not in ('pending', 'running', 'sleeping', 'waiting') then
    return false; -- unknown run, or one that will never wait again
  end if;
  insert into workflows.signals (run_id, event, payload)
  values (signal.run_id, signal.event, coalesce(signal.payload, '{}'));
  if v_status = 'waiting' then
    perform workflows._wake(signal.run_id);
  end if;
  return true;
end
$$;

create or replace function workflows.cancel(run_id bigint)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform workflows._lock_job(cancel.run_id);
  update workflows.runs r set cancel_requested = true, updated_at = now()
  where r.id = cancel.run_id and not r.cancel_requested
    and r.status in ('pending', 'running', 'sleeping', 'waiting');
  if not found then
    return false;
  end if;
  perform workflows._wake(cancel.run_id);
  return true;
end
$$;

-- Resumes a failed run (its failed steps get fresh attempts) or a run whose
-- compensation failed (that compensation gets fresh attempts); history stays.
create or replace function workflows.retry(run_id bigint)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_status text;
begin
  select r.status into v_status from workflows.runs r where r.id = retry.run_id for update;
  if v_status = 'failed' then
    update workflows.steps s set status = 'retrying', attempts = 0, wake_at = null,
      updated_at = now()
    where s.run_id = retry.run_id and s.status = 'failed';
    update workflows.runs r set status = 'pending', finished_at = null, updated_at = now()
    where r.id = retry.run_id;
  elsif v_status = 'compensation_failed' then
    update workflows.steps s set compensation_status = 'retrying', compensation_attempts = 0,
      compensation_wake_at = null, updated_at = now()
    where s.run_id = retry.run_id and s.compensation_status = 'compensation_failed';
    update workflows.runs r set status = 'compensating', finished_at = null, updated_at = now()
    where r.id = retry.run_id;
  else
    return false;
  end if;
  perform workflows._enqueue_run(retry.run_id);
  return true;
end
$$;

-- A worker starts an invocation: checks its fence, marks the run running, and
-- returns everything replay needs. {"state": "lease_lost"} without the fence;
-- {"state": "finished"} for a run that has ended (its job is removed).
create or replace function workflows.begin(p_run_id bigint, p_job_id bigint, p_token uuid)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_run workflows.runs;
begin
  if not workflows._fence(p_run_id, p_job_id, p_token) then
    return jsonb_build_object('state', 'lease_lost');
  end if;
  select * into v_run from workflows.runs r where r.id = p_run_id for update;
  if v_run.id is null or v_run.status in ('completed', 'failed', 'compensated',
    'compensation_failed', 'cancelled') then
    delete from queue.jobs j where j.id = p_job_id;
    return jsonb_build_object('state', 'finished');
  end if;
  if v_run.status in ('pending', 'sleeping', 'waiting') then
    update workflows.runs r set status = 'running', updated_at = now() where r.id = p_run_id;
  end if;
  return jsonb_build_object(
    'state', 'run',
    'workflow', v_run.workflow_name,
    'input', v_run.input,
    'status', v_run.status,
    'cancelRequested', v_run.cancel_requested,
    'traceparent', v_run.traceparent,
    'nowMs', extract(epoch from clock_timestamp()) * 1000,
    'steps', coalesce((select jsonb_agg(jsonb_build_object(
        'name', s.name, 'seq', s.seq, 'kind', s.kind, 'status', s.status,
        'attempts', s.attempts, 'result', s.result, 'error', s.error,
        'wakeAtMs', extract(epoch from s.wake_at) * 1000,
        'completedOrder', s.completed_order, 'hasCompensation', s.has_compensation,
        'compensationStatus', s.compensation_status,
        'compensationAttempts', s.compensation_attempts,
        'compensationWakeAtMs', extract(epoch from s.compensation_wake_at) * 1000) order by s.seq)
      from workflows.steps s where s.run_id = p_run_id), '[]'::jsonb),
    'signals', coalesce((select jsonb_agg(jsonb_build_object(
        'id', g.id, 'event', g.event, 'payload', g.payload) order by g.id)
      from workflows.signals g where g.run_id = p_run_id and g.consumed_by is null), '[]'::jsonb));
end
$$;

-- Records one step's state under the fence. A completed step is never written
-- again (exactly-once results); a completion takes the run's next completion
-- number. Returns 'ok', 'lease_lost', or 'cancelled' (recorded, but the run was
-- cancelled meanwhile: the worker stops and compensates).
create or replace function workflows.record_step(
  p_run_id bigint, p_job_id bigint, p_token uuid,
  p_name text, p_seq integer, p_kind text, p_status text, p_attempts integer,
  p_result jsonb default null, p_error text default null, p_wake_at_ms double precision default null,
  p_has_compensation boolean default false, p_signal_id bigint default null
) returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_order integer;
  v_cancel boolean;
begin
  if not workflows._fence(p_run_id, p_job_id, p_token) then
    return 'lease_lost';
  end if;
  if p_result is not null and octet_length(p_result::text) > workflows.max_result_bytes() then
    raise exception 'workflows: step result is larger than % bytes of JSON',
      workflows.max_result_bytes() using errcode = '54000';
  end if;
  if p_status = 'completed' then
    update workflows.runs r set completions = r.completions + 1, updated_at = now()
    where r.id = p_run_id returning r.completions, r.cancel_requested into v_order, v_cancel;
  else
    select r.cancel_requested into v_cancel from workflows.runs r where r.id = p_run_id for update;
  end if;
  insert into workflows.steps as s (run_id, name, seq, kind, status, attempts, result, error,
    wake_at, completed_order, has_compensation)
  values (p_run_id, p_name, p_seq, p_kind, p_status, p_attempts, p_result, left(p_error, 4000),
    to_timestamp(p_wake_at_ms / 1000.0), v_order, p_has_compensation)
  on conflict (run_id, name) do update
  set status = excluded.status, attempts = excluded.attempts, result = excluded.result,
    error = coalesce(excluded.error, s.error), wake_at = excluded.wake_at,
    completed_order = excluded.completed_order, has_compensation = excluded.has_compensation,
    updated_at = now()
  where s.status <> 'completed';
  if p_signal_id is not null then
    update workflows.signals g set consumed_by = p_name
    where g.id = p_signal_id and g.run_id = p_run_id and g.consumed_by is null;
  end if;
  return case when v_cancel then 'cancelled' else 'ok' end;
end
$$;

-- Records one compensation attempt under the fence ('compensated', 'retrying'
-- with its next try, or 'compensation_failed'). A compensated step is never
-- written again. Returns 'ok' or 'lease_lost'.
create or replace function workflows.record_compensation(
  p_run_id bigint, p_job_id bigint, p_token uuid, p_name text, p_status text,
  p_attempts integer, p_error text default null, p_wake_at_ms double precision default null
) returns text
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if not workflows._fence(p_run_id, p_job_id, p_token) then
    return 'lease_lost';
  end if;
  update workflows.steps s
  set compensation_status = p_status, compensation_attempts = p_attempts,
    compensation_error = coalesce(left(p_error, 4000), s.compensation_error),
    compensation_wake_at = to_timestamp(p_wake_at_ms / 1000.0), updated_at = now()
  where s.run_id = p_run_id and s.name = p_name and s.status = 'completed'
    and s.compensation_status is distinct from 'compensated';
  return 'ok';
end
$$;

-- Moves a run under the fence. Terminal statuses end the run and remove its job;
-- 'compensating' without a wake time only changes the status (the worker goes
-- on); anything else hands the job back to run at p_wake_at_ms (now when null).
-- A waiting run whose awaited events (p_events) already have a signal, or one
-- cancelled meanwhile, is scheduled at once. Returns 'ok' or 'lease_lost'.
create or replace function workflows.advance(
  p_run_id bigint, p_job_id bigint, p_token uuid, p_status text,
  p_output jsonb default null, p_error text default null,
  p_wake_at_ms double precision default null, p_events text[] default null
) returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  -- A wait without a time-out sleeps until a signal or a cancel wakes it.
  v_run_at timestamptz := coalesce(to_timestamp(p_wake_at_ms / 1000.0),
    case when p_status = 'waiting' then 'infinity'::timestamptz else now() end);
  v_cancel boolean;
begin
  if not workflows._fence(p_run_id, p_job_id, p_token) then
    return 'lease_lost';
  end if;
  select r.cancel_requested into v_cancel from workflows.runs r where r.id = p_run_id for update;
  update workflows.runs r
  set status = p_status, output = p_output,
    error = case when p_status = 'completed' then null else coalesce(left(p_error, 4000), r.error) end,
    updated_at = now(),
    finished_at = case when p_status in ('completed', 'failed', 'compensated',
      'compensation_failed', 'cancelled') then now() end
  where r.id = p_run_id;
  if p_status in ('completed', 'failed', 'compensated', 'compensation_failed', 'cancelled') then
    delete from queue.jobs j where j.id = p_job_id;
    return 'ok';
  end if;
  if p_status = 'compensating' and p_wake_at_ms is null then
    return 'ok';
  end if;
  if v_cancel and p_status <> 'compensating' then
    v_run_at := now();
  elsif p_events is not null and exists (select 1 from workflows.signals g
    where g.run_id = p_run_id and g.consumed_by is null and g.event = any (p_events)) then
    v_run_at := now();
  end if;
  update queue.jobs j
  set lease_until = null, lease_token = null, locked_by = null, run_at = v_run_at, attempts = 0
  where j.id = p_job_id;
  if v_run_at <= now() then
    perform pg_notify('queue_jobs', 'default');
  end if;
  return 'ok';
end
$$;

-- Largest step result, output or signal payload kept (bytes of JSON text).
create or replace function workflows.max_result_bytes()
returns integer
language sql immutable security definer set search_path = ''
as $$ select 262144 $$;

revoke all on all functions in schema workflows from public, anon, authenticated;
grant execute on function
  workflows.start(text, jsonb, text, uuid, text),
  workflows.status(bigint),
  workflows.signal(bigint, text, jsonb),
  workflows.cancel(bigint),
  workflows.retry(bigint),
  workflows.begin(bigint, bigint, uuid),
  workflows.record_step(bigint, bigint, uuid, text, integer, text, text, integer, jsonb, text,
    double precision, boolean, bigint),
  workflows.record_compensation(bigint, bigint, uuid, text, text, integer, text,
    double precision),
  workflows.advance(bigint, bigint, uuid, text, jsonb, text, double precision, text[]),
  workflows.max_result_bytes()
to service_role;
