-- The events example on `public.notes` (docs/events.md "The notes example"):
--   * every insert, update and delete of a note appends an event in the writer's
--     transaction: stream `notes-<id>`, type `notes.inserted|updated|deleted`;
--   * `public.note_activity`, a read model per user (notes count, last activity)
--     that users may read for themselves only, maintained by a projection that
--     calls events.apply_note_activity in the same transaction as its ack.

create trigger notes_events
  after insert or update or delete on public.notes
  for each row execute function events.append_row_change('notes');

create table public.note_activity (
  user_id uuid primary key,
  notes_count integer not null default 0 constraint note_activity_count_check check (notes_count >= 0),
  last_activity_at timestamptz not null
);

comment on table public.note_activity is
  'Per-user notes activity: a read model built from notes.* events (see docs/events.md).';

alter table public.note_activity enable row level security;

-- `(select auth.uid())` is evaluated once per statement, not once per row.
create policy "note_activity: owners read" on public.note_activity
  for select to authenticated
  using (user_id = (select auth.uid()));

-- Read-only for users: only the projection (through the definer function below,
-- or service_role) writes it.
revoke all on public.note_activity from anon, authenticated;
grant select on public.note_activity to authenticated;

-- Applies notes.* events (by position) to note_activity; returns how many it
-- applied. Not idempotent (counts add up): call it in the transaction that acks
-- the same events (events.ack returns how many it acknowledged; roll back when
-- that is short) or sets the projection's checkpoint, so each event counts once.
-- A delete of a note whose insert came before the projection started cannot
-- take the count below zero.
create or replace function events.apply_note_activity(positions bigint[])
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  with ev as (
    select (e.data ->> 'user_id')::uuid as user_id, e.type, e.created_at
    from events.events e
    where e.position = any (coalesce(positions, '{}'))
      and e.type in ('notes.inserted', 'notes.updated', 'notes.deleted')
      and e.data ->> 'user_id' is not null
  ), per_user as (
    select ev.user_id,
      sum(case ev.type when 'notes.inserted' then 1 when 'notes.deleted' then -1 else 0 end)
        as delta,
      max(ev.created_at) as last_at, count(*) as n
    from ev group by ev.user_id
  ), upserted as (
    insert into public.note_activity as a (user_id, notes_count, last_activity_at)
    select p.user_id, greatest(p.delta, 0), p.last_at from per_user p
    on conflict (user_id) do update
      set notes_count = greatest(a.notes_count + (select p.delta from per_user p
          where p.user_id = a.user_id), 0),
        last_activity_at = greatest(a.last_activity_at, excluded.last_activity_at)
    returning 1
  )
  select coalesce(sum(p.n), 0)::integer into v_count
  from per_user p where exists (select 1 from upserted);
  return v_count;
end
$$;

revoke all on function events.apply_note_activity(bigint[]) from public, anon, authenticated;
grant execute on function events.apply_note_activity(bigint[]) to service_role;
