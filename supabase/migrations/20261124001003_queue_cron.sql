-- Schedules the queue-worker function with pg_cron + pg_net, reading the URL and
-- the API key from Vault at every run (rotating the key needs no migration).
--
-- Set the secrets once per project (SQL editor), then apply this migration:
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1/queue-worker',
--     'queue_worker_url');
--   select vault.create_secret('<the sb_secret_... key named "cron">', 'queue_worker_key');
--
-- Where pg_cron, pg_net or Vault is missing (the local vanilla Postgres, some
-- self-hosted setups) this migration only raises a notice: nothing else depends
-- on the schedule, and `deno task dev` runs its own scheduler.
do $migration$
begin
  if not exists (select 1 from pg_available_extensions where name = 'pg_cron')
    or not exists (select 1 from pg_available_extensions where name = 'pg_net')
    or not exists (select 1 from pg_namespace where nspname = 'vault') then
    raise notice 'queue: pg_cron, pg_net or vault is missing; queue-worker is not scheduled '
      '(see docs/queue.md)';
    return;
  end if;
  create extension if not exists pg_cron with schema pg_catalog;
  create extension if not exists pg_net with schema extensions;
  -- Every 5 seconds: each run drains until the queue is empty or its budget is
  -- spent, so the interval bounds the wait of a job enqueued while no run is active.
  -- Runs may overlap; SKIP LOCKED claims keep them from taking the same jobs.
  -- Dynamic SQL: the cron and net schemas do not exist when this block is parsed.
  execute $sql$
    select cron.schedule('queue-worker', '5 seconds', $job$
      select net.http_post(
        url := (select decrypted_secret from vault.decrypted_secrets
                where name = 'queue_worker_url'),
        headers := jsonb_build_object(
          'content-type', 'application/json',
          'apikey', (select decrypted_secret from vault.decrypted_secrets
                     where name = 'queue_worker_key')),
        body := '{}'::jsonb,
        timeout_milliseconds := 5000
      )
      where exists (select 1 from vault.decrypted_secrets where name = 'queue_worker_url')
    $job$)
  $sql$;
end
$migration$;
