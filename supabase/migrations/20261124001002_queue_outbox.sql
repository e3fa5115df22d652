-- Transactional outbox: a trigger function that turns row changes of any table
-- into jobs in the SAME transaction as the change. If the change rolls back, so
-- does the job; if it commits, the job exists (no dual write to get wrong).
--
-- Usage: after insert/update/delete ... for each row
--   execute function queue.enqueue_row_change('<job_type>' [, '<queue_name>'])
-- The job payload has the shape of Supabase database webhooks:
--   {"type": "INSERT"|"UPDATE"|"DELETE", "schema", "table", "record", "old_record"}
--
-- Security definer: the user whose write fires the trigger (say `authenticated`)
-- needs no privilege on the queue. Trigger functions cannot be called directly,
-- and EXECUTE is checked only when a trigger is created (owner or service_role).

create or replace function queue.enqueue_row_change()
returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_type text := tg_argv[0];
  v_queue text := coalesce(tg_argv[1], 'default');
begin
  if v_type is null then
    raise exception 'queue.enqueue_row_change: pass the job type as the first trigger argument'
      using errcode = '22023';
  end if;
  insert into queue.jobs (queue_name, job_type, payload)
  values (v_queue, v_type, jsonb_build_object(
    'type', tg_op,
    'schema', tg_table_schema,
    'table', tg_table_name,
    'record', case when tg_op = 'DELETE' then null else to_jsonb(new) end,
    'old_record', case when tg_op = 'INSERT' then null else to_jsonb(old) end
  ));
  perform pg_notify('queue_jobs', v_queue);
  return null; -- AFTER trigger: the return value is ignored
end
$$;

revoke all on function queue.enqueue_row_change() from public, anon, authenticated;
grant execute on function queue.enqueue_row_change() to service_role;

-- The example: every new or edited note becomes a `notes.changed` job, which the
-- queue-worker's example handler processes (a real app would index, notify, ...).
create trigger notes_enqueue_change
  after insert or update on public.notes
  for each row execute function queue.enqueue_row_change('notes.changed');

-- The same pattern for Storage (hosted projects; storage.objects does not exist on
-- the local bootstrap, so this is documentation, not DDL):
--   create trigger objects_enqueue_upload
--     after insert on storage.objects
--     for each row execute function queue.enqueue_row_change('storage.object_created');
