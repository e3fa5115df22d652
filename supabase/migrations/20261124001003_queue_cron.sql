-- Schedules the queue-worker function with pg_cron + pg_net, reading the URL and
-- the API key from Vault at every run (rotating the key needs no migration).
--
-- Set the secrets once per project (SQL editor), then apply this migration:
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1/queue-worker',
--     'queue_worker_url');
--   select vault.create_secret('<the sb_secret_... key named "cron">', 'queue_worker_key');
--
-- Wherever the schedule cannot be made, this migration only raises a notice saying
-- why: nothing else depends on the schedule, and `deno task dev` runs its own
-- scheduler. That covers pg_cron, pg_net or Vault missing (the local vanilla
-- Postgres, some self-hosted setups) and pg_cron present but unusable: not in
-- shared_preload_libraries, set up for another database (cron.database_name), or
-- older than 1.5 (no '5 seconds' schedules).
do $migration$
declare
  v_cron_version text;
  v_cron_db text;
begin
  select e.extversion into v_cron_version from pg_catalog.pg_extension e
  where e.extname = 'pg_cron';
  if v_cron_version is null then
    select a.default_version into v_cron_version from pg_catalog.pg_available_extensions a
    where a.name = 'pg_cron';
  end if;
  if v_cron_version is null
    or not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_net'
      union all select 1 from pg_catalog.pg_available_extensions where name = 'pg_net')
    or to_regclass('vault.decrypted_secrets') is null then
    raise notice 'queue: pg_cron, pg_net or vault is missing; queue-worker is not scheduled '
      '(see docs/queue.md)';
    return;
  end if;
  -- pg_cron defines cron.database_name only once the server preloaded it. The
  -- setting is superuser-only: a role that may not read it proceeds, and the
  -- handler below turns pg_cron's own refusal into the notice.
  begin
    v_cron_db := pg_catalog.current_setting('cron.database_name', true);
  exception when insufficient_privilege then
    v_cron_db := pg_catalog.current_database();
  end;
  if v_cron_db is null then
    raise notice 'queue: pg_cron is installed but not loaded (add it to shared_preload_libraries '
      'and restart); queue-worker is not scheduled';
    return;
  end if;
  if v_cron_db <> pg_catalog.current_database() then
    raise notice 'queue: pg_cron runs in database "%" (cron.database_name), not "%"; '
      'queue-worker is not scheduled', v_cron_db, pg_catalog.current_database();
    return;
  end if;
  if string_to_array(substring(v_cron_version from '^[0-9]+(?:\.[0-9]+)*'),
      '.')::int[] < array[1, 5] then
    raise notice 'queue: pg_cron % cannot run second-level schedules (needs 1.5 or later); '
      'queue-worker is not scheduled', v_cron_version;
    return;
  end if;
  begin
    create extension if not exists pg_cron with schema pg_catalog;
    create extension if not exists pg_net with schema extensions;
    -- Every 5 seconds: each run drains until the queue is empty or its budget is
    -- spent, so the interval bounds the wait of a job enqueued while no run is active.
    -- Runs may overlap; SKIP LOCKED claims keep them from taking the same jobs.
    -- A run without both secrets fails instead of posting: pg_cron records only a
    -- run's error or its command tag in cron.job_run_details, so a notice would be
    -- lost and a null key would go out as a request without credentials.
    -- Dynamic SQL: the cron and net schemas do not exist when this block is parsed.
    execute $sql$
      select cron.schedule('queue-worker', '5 seconds', $job$
        do $run$
        declare
          v_url text := (select decrypted_secret from vault.decrypted_secrets
                         where name = 'queue_worker_url');
          v_key text := (select decrypted_secret from vault.decrypted_secrets
                         where name = 'queue_worker_key');
        begin
          if coalesce(v_url, '') = '' or coalesce(v_key, '') = '' then
            raise exception 'queue-worker not called: Vault secret % is missing or empty',
              case when coalesce(v_url, '') = '' then 'queue_worker_url' else 'queue_worker_key' end
              using errcode = '55000', hint = 'See docs/queue.md, "Scheduling with pg_cron + pg_net".';
          end if;
          perform net.http_post(
            url := v_url,
            headers := jsonb_build_object('content-type', 'application/json', 'apikey', v_key),
            body := '{}'::jsonb,
            timeout_milliseconds := 5000
          );
        end
        $run$
      $job$)
    $sql$;
  exception when others then
    -- pg_cron's refusals when it is present but unusable, from its install script or
    -- library: cron.database_name unknown (not preloaded), "can only create extension
    -- in database ...", "pg_cron can only be loaded via shared_preload_libraries",
    -- "invalid schedule: 5 seconds" (too old). Anything else is a real failure.
    if sqlstate in ('42704', 'P0001', '22023')
      or (sqlstate = 'XX000' and sqlerrm like '%shared_preload_libraries%') then
      raise notice 'queue: pg_cron cannot schedule here (%: %); queue-worker is not scheduled',
        sqlstate, sqlerrm;
    else
      raise;
    end if;
  end;
end
$migration$;
