-- Durable workflows and sagas (DESIGN §4.5, docs/workflows.md): schema `workflows`.
--
-- A run is a row in workflows.runs; each step, sleep and wait it has reached is a
-- row in workflows.steps (its memoized result, attempts, and compensation state);
-- signals sent to it wait in workflows.signals until a waitForEvent consumes them.
-- A run advances as queue work: one live `workflow.run` job per unfinished run
-- (queue.jobs, dedupe_key 'workflow:<run id>'). Every write a worker makes checks
-- that job's lease token (the fence), so a worker whose lease expired or was
-- reclaimed records nothing.
--
-- The schema is not exposed through PostgREST; functions are security definer
-- with an empty search_path, executable by service_role (and the owner) only.

create schema if not exists workflows;
revoke all on schema workflows from public;
grant usage on schema workflows to service_role;

create table workflows.runs (
  id bigint generated always as identity primary key,
  workflow_name text not null
    constraint runs_workflow_name_check check (workflow_name ~ '^[A-Za-z0-9_.:-]{1,200}$'),
  input jsonb not null,
  status text not null default 'pending'
    constraint runs_status_check check (status in ('pending', 'running', 'sleeping', 'waiting',
      'completed', 'failed', 'compensating', 'compensated', 'compensation_failed', 'cancelled')),
  output jsonb,
  error text,
  idempotency_key text
    constraint runs_idempotency_key_check check (char_length(idempotency_key) between 1 and 200),
  -- The user a run was started for (the api reads only its caller's runs).
  owner_id uuid,
  -- W3C traceparent of the starting request: every step's log lines carry it.
  traceparent text constraint runs_traceparent_check check (char_length(traceparent) <= 200),
  cancel_requested boolean not null default false,
  -- Completions so far: each completed step takes the next number (compensation order).
  completions integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);

create unique index runs_idempotency_idx on workflows.runs (workflow_name, idempotency_key)
  where idempotency_key is not null;
create index runs_owner_idx on workflows.runs (owner_id) where owner_id is not null;

create table workflows.steps (
  run_id bigint not null references workflows.runs (id) on delete cascade,
  name text not null constraint steps_name_check check (char_length(name) between 1 and 200),
  -- Call order within the run: replay must call the same names in the same order.
  seq integer not null,
  kind text not null constraint steps_kind_check check (kind in ('step', 'sleep', 'wait')),
  status text not null constraint steps_status_check check (status in ('completed', 'retrying',
    'failed', 'sleeping', 'waiting', 'timed_out')),
  attempts integer not null default 0,
  result jsonb,
  error text,
  -- sleeping/waiting: when the sleep ends or the wait times out; retrying: next try.
  wake_at timestamptz,
  completed_order integer,
  has_compensation boolean not null default false,
  compensation_status text constraint steps_compensation_status_check
    check (compensation_status in ('compensated', 'retrying', 'compensation_failed')),
  compensation_attempts integer not null default 0,
  compensation_error text,
  compensation_wake_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (run_id, name)
);

create table workflows.signals (
  id bigint generated always as identity primary key,
  run_id bigint not null references workflows.runs (id) on delete cascade,
  event text not null constraint signals_event_check check (char_length(event) between 1 and 200),
  payload jsonb not null default '{}',
  -- The wait step that took it; null while it is kept for a later wait.
  consumed_by text,
  created_at timestamptz not null default now()
);

create index signals_run_idx on workflows.signals (run_id, event) where consumed_by is null;

alter table workflows.runs enable row level security;
alter table workflows.steps enable row level security;
alter table workflows.signals enable row level security;
revoke all on workflows.runs, workflows.steps, workflows.signals from public, anon, authenticated;
grant select on workflows.runs, workflows.steps, workflows.signals to service_role;
create policy "no direct access" on workflows.runs
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on workflows.steps
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on workflows.signals
  as restrictive for all to public using (false) with check (false);
