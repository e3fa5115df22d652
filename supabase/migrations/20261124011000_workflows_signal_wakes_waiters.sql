-- A signal wakes a run only when the run waits for that event (docs/workflows.md,
-- "Sleeps and signals"). Before this, workflows.signal woke any waiting run for any
-- event: the run was replayed only to find nothing for its waits and went back to
-- waiting. The signal itself is always stored, as before (a later wait takes it).
--
-- workflows.steps.event: the event a wait step waits for (`ctx.waitForEvent`'s
-- `event`, default its name); null for steps and sleeps, and for waits recorded
-- before this migration. Their event is unknown here (a wait may name another event
-- than its own name), so any signal wakes them, as before: a spurious replay at
-- worst, never a wait left asleep.

alter table workflows.steps add column if not exists event text
  constraint steps_event_check check (event is null or
    (kind = 'wait' and char_length(event) between 1 and 200));

-- signal's look-up: the open waits of one run.
create index if not exists steps_open_waits_idx on workflows.steps (run_id)
  where kind = 'wait' and status = 'waiting';

-- record_step gains p_event (last, with a default: every existing call still works).
-- Dropped and created rather than overloaded: two candidates would make the old
-- 13-argument call ambiguous.
drop function if exists workflows.record_step(bigint, bigint, uuid, text, integer, text, text,
  integer, jsonb, text, double precision, boolean, bigint);

-- Records one step's state under the fence. A completed step is never written
-- again (exactly-once results); a completion takes the run's next completion
-- number. p_event: the event a wait waits for (kind 'wait' only; null keeps what
-- is stored). Returns 'ok', 'lease_lost', or 'cancelled' (recorded, but the run
-- was cancelled meanwhile: the worker stops and compensates).
create or replace function workflows.record_step(
  p_run_id bigint, p_job_id bigint, p_token uuid,
  p_name text, p_seq integer, p_kind text, p_status text, p_attempts integer,
  p_result jsonb default null, p_error text default null, p_wake_at_ms double precision default null,
  p_has_compensation boolean default false, p_signal_id bigint default null,
  p_event text default null
) returns text
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_order integer;
  v_cancel boolean;
begin
  if p_event is not null and (p_kind is distinct from 'wait'
    or char_length(p_event) not between 1 and 200) then
    raise exception 'workflows: event must be 1..200 characters, and only on a wait'
      using errcode = '22023';
  end if;
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
    wake_at, completed_order, has_compensation, event)
  values (p_run_id, p_name, p_seq, p_kind, p_status, p_attempts, p_result, left(p_error, 4000),
    to_timestamp(p_wake_at_ms / 1000.0), v_order, p_has_compensation, p_event)
  on conflict (run_id, name) do update
  set status = excluded.status, attempts = excluded.attempts, result = excluded.result,
    error = coalesce(excluded.error, s.error), wake_at = excluded.wake_at,
    completed_order = excluded.completed_order, has_compensation = excluded.has_compensation,
    event = coalesce(excluded.event, s.event), updated_at = now()
  where s.status <> 'completed';
  if p_signal_id is not null then
    update workflows.signals g set consumed_by = p_name
    where g.id = p_signal_id and g.run_id = p_run_id and g.consumed_by is null;
  end if;
  return case when v_cancel then 'cancelled' else 'ok' end;
end
$$;

-- Stores the signal (always, for an unfinished run) and wakes the run's job only
-- when one of its waits is open for this event. A run suspended for a sleep or a
-- retry's backoff while a parallel wait is open (status 'sleeping' or 'pending')
-- wakes too: the replay takes the signal and suspends again for the rest. A run
-- being replayed ('running') is not touched: its worker's advance sees the signal.
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
  if v_status in ('pending', 'sleeping', 'waiting') and exists (
    select 1 from workflows.steps s
    where s.run_id = signal.run_id and s.kind = 'wait' and s.status = 'waiting'
      and (s.event = signal.event or s.event is null)
  ) then
    perform workflows._wake(signal.run_id);
  end if;
  return true;
end
$$;

revoke all on function
  workflows.record_step(bigint, bigint, uuid, text, integer, text, text, integer, jsonb, text,
    double precision, boolean, bigint, text),
  workflows.signal(bigint, text, jsonb)
from public, anon, authenticated;
grant execute on function
  workflows.record_step(bigint, bigint, uuid, text, integer, text, text, integer, jsonb, text,
    double precision, boolean, bigint, text),
  workflows.signal(bigint, text, jsonb)
to service_role;
