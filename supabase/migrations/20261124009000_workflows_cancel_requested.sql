-- Cancellation of running steps (docs/workflows.md, "Cancel"): a worker replaying
-- runs asks, in one statement for all of them, which were cancelled
-- (workflows.cancel sets cancel_requested), and aborts their running steps'
-- signals. Read-only; service_role (and the owner) only, like the rest of the API.
create or replace function workflows.cancel_requested(p_run_ids bigint[])
returns setof bigint
language sql stable security definer set search_path = ''
as $$
  select r.id from workflows.runs r
  where r.id = any (p_run_ids) and r.cancel_requested
    and r.status in ('pending', 'running', 'sleeping', 'waiting')
$$;

revoke all on function workflows.cancel_requested(bigint[]) from public, anon, authenticated;
grant execute on function workflows.cancel_requested(bigint[]) to service_role;
