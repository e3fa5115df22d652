-- Attempts count real tries (docs/queue.md).
--
-- queue.fail takes the worker's effective max attempts per job (a job type's
-- own maxAttempts must beat the column default that SQL-side producers leave)
-- and a retry delay window per job (the worker knows the type's backoff policy,
-- e.g. a fixed day-long schedule for webhooks; the draw inside the window stays
-- here, next to the row). queue.release takes an optional delay per job, so a
-- job refused by an open circuit breaker goes back until the breaker may
-- half-open without spending the attempt.
--
-- Both keep their old leading parameters with defaults for the new ones, so
-- existing calls still resolve; the old signatures are dropped because a second
-- overload would make those calls ambiguous.

drop function if exists queue.fail(bigint[], uuid[], text[], boolean[], text[], integer[], integer[]);
drop function if exists queue.release(bigint[], uuid[]);

-- Fails jobs whose token still matches. Each either goes back to the queue after
-- a delay, or, when attempts are spent or the error is not retryable, moves to
-- dead_letters in the same statement with its payload, attempts and every error.
-- Optional arrays run parallel to ids:
--   max_attempts  the effective limit; it also replaces the row's, so later claims,
--                 lease reclaims and the dead letter all see the limit that counted
--   delay_min_ms / delay_max_ms
--                 the retry's run_at is now() + uniform(min, max); without them,
--                 random() * min(max_ms, base_ms * 2^(n-1)) (full jitter)
-- Delays are clamped to 0 .. 1 year: a NaN or huge window cannot break the statement.
create function queue.fail(
  ids bigint[],
  tokens uuid[],
  errors text[],
  retryable boolean[] default null,
  reasons text[] default null,
  backoff_base_ms integer[] default null,
  backoff_max_ms integer[] default null,
  max_attempts integer[] default null,
  delay_min_ms double precision[] default null,
  delay_max_ms double precision[] default null
) returns table (id bigint, outcome text, run_at timestamptz, reason text)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
  with input as (
    select *
    from unnest(fail.ids, fail.tokens, fail.errors, fail.retryable, fail.reasons,
      fail.backoff_base_ms, fail.backoff_max_ms, fail.max_attempts, fail.delay_min_ms,
      fail.delay_max_ms)
      as a (id, token, error, retryable, reason, base_ms, max_ms, max_attempts, lo_ms, hi_ms)
  ), target as materialized (
    select j.id,
      coalesce(i.retryable, true) and j.attempts < m.max_attempts as again,
      m.max_attempts,
      case when coalesce(i.retryable, true) then 'attempts_exhausted'
        else coalesce(i.reason, 'non_retryable') end as reason,
      left(coalesce(i.error, 'unknown error'), 4000) as error,
      jsonb_build_array(jsonb_build_object('attempt', j.attempts,
        'error', left(coalesce(i.error, 'unknown error'), 4000), 'at', now())) as entry,
      least(greatest(
        case when i.lo_ms is not null or i.hi_ms is not null then
          coalesce(i.lo_ms, i.hi_ms)
            + random() * greatest(coalesce(i.hi_ms, i.lo_ms) - coalesce(i.lo_ms, i.hi_ms), 0)
        else
          random() * least(greatest(coalesce(i.max_ms, 3600000), 0)::double precision,
            greatest(coalesce(i.base_ms, 1000), 0)
              * power(2, least(greatest(j.attempts - 1, 0), 40)))
        end, 0), 31536000000) as delay_ms
    from queue.jobs j
    join input i on j.id = i.id and j.lease_token = i.token
    -- greatest/least skip NULLs, so the row's own limit is taken explicitly.
    cross join lateral (select case when i.max_attempts is null then j.max_attempts
      else least(greatest(i.max_attempts, 1), 100) end as max_attempts) m
    for update of j
  ), dead as (
    delete from queue.jobs j using target t
    where j.id = t.id and not t.again
    returning j.id, j.queue_name, j.job_type, j.payload, j.priority, j.attempts, t.max_attempts,
      j.dedupe_key, t.reason, t.error, j.errors || t.entry as errors, j.created_at
  ), buried as (
    insert into queue.dead_letters (id, queue_name, job_type, payload, priority, attempts,
      max_attempts, dedupe_key, reason, last_error, errors, created_at)
    select d.id, d.queue_name, d.job_type, d.payload, d.priority, d.attempts, d.max_attempts,
      d.dedupe_key, d.reason, d.error, d.errors, d.created_at
    from dead d
    returning id, reason
  ), retried as (
    update queue.jobs j
    set lease_until = null, lease_token = null, locked_by = null,
      run_at = now() + make_interval(secs => t.delay_ms / 1000.0),
      max_attempts = t.max_attempts,
      errors = j.errors || t.entry
    from target t
    where j.id = t.id and t.again
    returning j.id, j.run_at
  )
  select r.id, 'retried'::text, r.run_at, null::text from retried r
  union all
  select b.id, 'dead_lettered'::text, null::timestamptz, b.reason from buried b;
end
$$;

-- Hands claimed jobs back without counting the attempt: a worker that must stop
-- (its budget is spent, or it is shutting down) returns what it did not start or
-- could not finish, so those jobs run again at once elsewhere instead of waiting
-- for their lease to expire. With delays_ms (parallel to ids) a job waits that
-- long first: a job whose dependency's circuit breaker is open is deferred until
-- the breaker may let a probe through. Clamped to 0 .. 1 day. Returns how many
-- still held their lease.
create function queue.release(
  ids bigint[],
  tokens uuid[],
  delays_ms double precision[] default null
) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  update queue.jobs j
  set lease_until = null, lease_token = null, locked_by = null,
    run_at = now() + make_interval(secs => least(greatest(coalesce(a.delay_ms, 0), 0),
      86400000) / 1000.0),
    attempts = greatest(j.attempts - 1, 0)
  from unnest(ids, tokens, delays_ms) as a (id, token, delay_ms)
  where j.id = a.id and j.lease_token = a.token;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke all on function
  queue.fail(bigint[], uuid[], text[], boolean[], text[], integer[], integer[], integer[],
    double precision[], double precision[]),
  queue.release(bigint[], uuid[], double precision[])
from public, anon, authenticated;
grant execute on function
  queue.fail(bigint[], uuid[], text[], boolean[], text[], integer[], integer[], integer[],
    double precision[], double precision[]),
  queue.release(bigint[], uuid[], double precision[])
to service_role;
