-- Example table for the `api` function's notes.* actions. Rows belong to the
-- user who wrote them; row-level security, not application code, scopes them.
create table public.notes (
  id bigint generated always as identity primary key,
  -- No foreign key to auth.users: the example must also run on the local
  -- stack's bootstrap, where auth.users does not exist. Add one in your app.
  user_id uuid not null default auth.uid(),
  body text not null check (char_length(body) between 1 and 10000),
  created_at timestamptz not null default now()
);

comment on table public.notes is 'Example notes, one owner per row (RLS).';

-- The list query filters by owner and sorts newest first.
create index notes_user_id_created_at_idx on public.notes (user_id, created_at desc);

alter table public.notes enable row level security;

-- `(select auth.uid())` is evaluated once per statement, not once per row.
create policy "notes: owners read" on public.notes
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy "notes: owners insert" on public.notes
  for insert to authenticated
  with check (user_id = (select auth.uid()));

create policy "notes: owners update" on public.notes
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

create policy "notes: owners delete" on public.notes
  for delete to authenticated
  using (user_id = (select auth.uid()));

-- anon gets nothing; authenticated gets only what its policies allow.
revoke all on public.notes from anon;
grant select, insert, update, delete on public.notes to authenticated;
