-- The event log (DESIGN §4.6, docs/events.md): schema `events`, an append-only
-- table of events with a global position and a per-stream version, and the SQL
-- API to append and read them.
--
-- Positions and gap safety. A position is the appending transaction's id (xid8)
-- shifted left by 20 bits, plus a counter within that transaction:
--   position = (xid << 20) + n,   n in 0 .. 2^20 - 1
-- Appends never wait for each other (except on the same stream), yet a reader
-- can tell which positions are final: every transaction whose xid is below the
-- snapshot's xmin (`pg_snapshot_xmin(pg_current_snapshot())`) has ended, and
-- every transaction still running or yet to start has an xid at or above it, so
-- writes positions at or above `xmin << 20`. events.read returns only positions
-- below that bound, in position order: nothing below a returned position can
-- commit later. A reader that asks for what follows the highest position it has
-- seen therefore sees every committed event exactly once. (Ordering by a sequence
-- instead would not do: a transaction can draw a low number, stay open, and
-- commit after readers have moved past it.) docs/events.md has the full argument.
--
-- Within a stream, versions and positions must agree. An older transaction (lower
-- xid) that appends to a stream after a younger one committed there would get a
-- position below the stream's last; that append fails with 40001 (retry the
-- transaction: the retry has a fresh, higher xid). It needs a transaction that
-- wrote elsewhere first and then appended to a stream another transaction wrote
-- meanwhile; expected_version catches most such races anyway.
--
-- The schema is not exposed through PostgREST; every function is security
-- definer with an empty search_path, executable by service_role (and the owner).

create schema if not exists events;
revoke all on schema events from public;
grant usage on schema events to service_role;

comment on schema events is 'Event log and subscriptions (see docs/events.md). Not exposed to the Data API.';

create table events.events (
  -- (xid << 20) + n: see above. Sparse, increasing in read order; opaque to callers.
  position bigint primary key,
  stream text not null,
  type text not null,
  data jsonb not null constraint events_data_check check (jsonb_typeof(data) = 'object'),
  -- Free-form; `traceparent` (W3C trace context) is the one key the API fills in.
  metadata jsonb not null default '{}'
    constraint events_metadata_check check (jsonb_typeof(metadata) = 'object'),
  version bigint not null constraint events_version_check check (version >= 1),
  -- The appending transaction's start time (now()): shared by its events.
  created_at timestamptz not null default now(),
  constraint events_stream_version_key unique (stream, version)
);

comment on table events.events is
  'Append-only event log. position: global read order; version: 1.. within a stream.';

-- Replay from a time looks up the first position at or after it. Creation times
-- follow positions closely (both grow with time), which is what BRIN needs.
create index events_created_at_idx on events.events using brin (created_at);

-- The current version of every stream: appends lock this row, so appends to one
-- stream are serialised (versions stay dense) while different streams never wait.
create table events.streams (
  stream text primary key,
  version bigint not null,
  last_position bigint not null
);

comment on table events.streams is 'Current version and last position of every stream.';

alter table events.events enable row level security;
alter table events.streams enable row level security;
revoke all on events.events, events.streams from public, anon, authenticated;
grant select on events.events, events.streams to service_role;

-- RLS with a restrictive deny-all policy: a stray grant can never expose a row
-- (and the `rls_enabled_no_policy` advisor sees the intent). The definer
-- functions run as the owner and service_role bypasses RLS.
create policy "no direct access" on events.events
  as restrictive for all to public using (false) with check (false);
create policy "no direct access" on events.streams
  as restrictive for all to public using (false) with check (false);

-- Limits, as functions so TypeScript, tests and every SQL path agree.
-- One event's data + metadata, as JSON text (what a reader receives).
create or replace function events.max_event_bytes()
returns integer
language sql immutable security definer set search_path = ''
as $$ select 1048576 $$;

-- Events one append_many call takes.
create or replace function events.max_batch()
returns integer
language sql immutable security definer set search_path = ''
as $$ select 10000 $$;

-- The bound below which every position is final: `xmin << 20` of the current
-- snapshot. Stable: within one statement it reads the statement's own snapshot,
-- the one its rows are read with (a newer snapshot's bound could admit events
-- that the older snapshot cannot see yet).
create or replace function events.settled_bound()
returns bigint
language sql stable security definer set search_path = ''
as $$ select (pg_snapshot_xmin(pg_current_snapshot())::text::bigint) << 20 $$;

-- Stream and type names: 1..200 characters, no control characters. Raises
-- 22023 naming the argument.
create or replace function events._check_name(what text, value text)
returns void
language plpgsql immutable security definer set search_path = ''
as $$
begin
  if value is null or char_length(value) not between 1 and 200 then
    raise exception 'events: % must be 1..200 characters', what using errcode = '22023';
  end if;
  if value ~ '[\x01-\x1f\x7f]' then
    raise exception 'events: % must not contain control characters', what
      using errcode = '22023';
  end if;
end
$$;

-- One event's checks: type, data (a JSON object), metadata (an object) and size.
-- 22023 for a bad value, 54000 for the size limit. `n` names the batch element.
create or replace function events._check_event(n bigint, type text, data jsonb, metadata jsonb)
returns void
language plpgsql immutable security definer set search_path = ''
as $$
declare
  v_where text := case when n is null then '' else format(' (event %s)', n) end;
  v_bytes bigint;
begin
  perform events._check_name('type' || v_where, type);
  if data is null or jsonb_typeof(data) <> 'object' then
    raise exception 'events: data must be a JSON object%, got %', v_where,
      coalesce(jsonb_typeof(data), 'null') using errcode = '22023';
  end if;
  if metadata is not null and jsonb_typeof(metadata) <> 'object' then
    raise exception 'events: metadata must be a JSON object%, got %', v_where,
      jsonb_typeof(metadata) using errcode = '22023';
  end if;
  v_bytes := octet_length(data::text) + coalesce(octet_length(metadata::text), 2);
  if v_bytes > events.max_event_bytes() then
    raise exception 'events: event too large%: % bytes of data and metadata, the limit is % bytes',
      v_where, v_bytes, events.max_event_bytes()
      using errcode = '54000',
        hint = 'Store large data elsewhere (e.g. Storage) and append a reference.';
  end if;
end
$$;

-- The one write path: appends events (parallel arrays) to one stream, checking
-- expected_version. Returns each event's position and version, in input order.
-- Errors: 22023 bad input, 54000 too large, P0409 wrong expected_version,
-- 40001 an older transaction appending behind a younger one (retry).
create or replace function events._append(
  p_stream text, p_types text[], p_data jsonb[], p_metadata jsonb[], p_expected bigint
) returns table ("position" bigint, version bigint)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  n integer := coalesce(cardinality(p_types), 0);
  v_xid bigint := pg_current_xact_id()::text::bigint;
  v_base bigint;
  v_first bigint;
  v_version bigint;
  v_actual bigint;
  v_last bigint;
  v_trace text := nullif(current_setting('events.traceparent', true), '');
begin
  perform events._check_name('stream', p_stream);
  if p_expected is not null and p_expected < 0 then
    raise exception 'events: expected_version must be >= 0 (0: the stream has no events), got %',
      p_expected using errcode = '22023';
  end if;
  if n = 0 then
    raise exception 'events: nothing to append' using errcode = '22023';
  end if;
  -- 2^43 transactions: centuries at any realistic rate; checked so it fails loudly.
  if v_xid >= (1::bigint << 43) then
    raise exception 'events: transaction id % is beyond the position range', v_xid
      using errcode = '54000';
  end if;
  v_base := v_xid << 20;
  -- This transaction's next slot: only this transaction writes in its range.
  select coalesce(max(e.position) + 1, v_base) into v_first
  from events.events e where e.position >= v_base and e.position < v_base + (1 << 20);
  if v_first + n > v_base + (1 << 20) then
    raise exception 'events: at most % events per transaction', (1 << 20)
      using errcode = '54000', hint = 'Append in several transactions.';
  end if;

  -- Lock the stream row and take the versions. The WHERE clauses refuse a wrong
  -- expected_version and an append that would sit below the stream's last
  -- position (written by a younger transaction); then nothing is returned.
  if p_expected is null or p_expected = 0 then
    insert into events.streams as s (stream, version, last_position)
    values (p_stream, n, v_first + n - 1)
    on conflict (stream) do update
      set version = s.version + n, last_position = v_first + n - 1
      where p_expected is null and (s.last_position >> 20) <= v_xid
    returning s.version into v_version;
  else
    update events.streams s set version = s.version + n, last_position = v_first + n - 1
    where s.stream = p_stream and s.version = p_expected and (s.last_position >> 20) <= v_xid
    returning s.version into v_version;
  end if;
  if v_version is null then
    select s.version, s.last_position into v_actual, v_last
    from events.streams s where s.stream = p_stream;
    if p_expected is not null and coalesce(v_actual, 0) <> p_expected then
      raise exception 'events: stream % is at version %, expected version %', p_stream,
        coalesce(v_actual, 0), p_expected
        using errcode = 'P0409', detail = format('stream=%s expected=%s actual=%s', p_stream,
          p_expected, coalesce(v_actual, 0));
    end if;
    raise exception 'events: stream % was last written by a younger transaction; retry', p_stream
      using errcode = '40001',
        hint = 'This transaction started writing before the one that appended last to the stream; a retry appends after it.';
  end if;

  return query
  insert into events.events as e (position, stream, type, data, metadata, version)
  select v_first + x.i - 1, p_stream, x.type, x.data,
    case when v_trace is null or coalesce(x.metadata, '{}') ? 'traceparent'
      then coalesce(x.metadata, '{}')
      else coalesce(x.metadata, '{}') || jsonb_build_object('traceparent', v_trace) end,
    v_version - n + x.i
  from unnest(p_types, p_data, p_metadata) with ordinality as x (type, data, metadata, i)
  order by x.i
  returning e.position, e.version;

  -- Wakes idle subscribers (LISTEN events); delivered at commit, once per transaction.
  perform pg_notify('events', '');
end
$$;

-- Appends one event and returns its global position.
create or replace function events.append(
  stream text,
  type text,
  data jsonb,
  metadata jsonb default '{}',
  expected_version bigint default null
) returns bigint
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_position bigint;
begin
  perform events._check_event(null, append.type, append.data, append.metadata);
  select a.position into v_position
  from events._append(append.stream, array[append.type], array[append.data],
    array[append.metadata], append.expected_version) a;
  return v_position;
end
$$;

-- Appends a batch to one stream, all or nothing: `events` is a JSON array of
-- {"type", "data", "metadata"?}. Returns each event's position and version in
-- input order; the last version is the stream's new expected_version.
create or replace function events.append_many(
  stream text,
  events jsonb,
  expected_version bigint default null
) returns table ("position" bigint, version bigint)
language plpgsql volatile security definer set search_path = ''
as $$
#variable_conflict use_column
declare
  v_bad jsonb;
  v_n bigint;
  v_count integer;
begin
  if append_many.events is null or jsonb_typeof(append_many.events) <> 'array' then
    raise exception 'events: append_many expects a JSON array of {type, data, metadata?}'
      using errcode = '22023';
  end if;
  v_count := jsonb_array_length(append_many.events);
  if v_count not between 1 and events.max_batch() then
    raise exception 'events: append_many takes 1..% events, got %', events.max_batch(), v_count
      using errcode = '22023';
  end if;
  -- One set-based pass finds the first bad element; only that one goes through
  -- _check_event, which raises the precise message.
  select e, n into v_bad, v_n
  from jsonb_array_elements(append_many.events) with ordinality as x (e, n)
  where jsonb_typeof(e) <> 'object'
    or jsonb_typeof(e -> 'type') is distinct from 'string'
    or char_length(e ->> 'type') not between 1 and 200 or (e ->> 'type') ~ '[\x01-\x1f\x7f]'
    or jsonb_typeof(e -> 'data') is distinct from 'object'
    or jsonb_typeof(e -> 'metadata') not in ('object', 'null')
    or octet_length((e -> 'data')::text) + coalesce(octet_length((e -> 'metadata')::text), 2)
      > events.max_event_bytes()
  order by n
  limit 1;
  if v_bad is not null then
    if jsonb_typeof(v_bad) <> 'object' then
      raise exception 'events: event % must be a JSON object, got %', v_n, jsonb_typeof(v_bad)
        using errcode = '22023';
    end if;
    if jsonb_typeof(v_bad -> 'type') is distinct from 'string' then
      raise exception 'events: type (event %) must be a string', v_n using errcode = '22023';
    end if;
    perform events._check_event(v_n, v_bad ->> 'type', v_bad -> 'data',
      nullif(v_bad -> 'metadata', 'null'::jsonb));
  end if;
  return query
  select a.position, a.version
  from events._append(append_many.stream,
    array(select e ->> 'type' from jsonb_array_elements(append_many.events) with ordinality x (e, n) order by n),
    array(select e -> 'data' from jsonb_array_elements(append_many.events) with ordinality x (e, n) order by n),
    array(select nullif(e -> 'metadata', 'null'::jsonb)
      from jsonb_array_elements(append_many.events) with ordinality x (e, n) order by n),
    append_many.expected_version) a;
end
$$;

-- The SQL consumer's fetch: events after `after_position`, in position order,
-- only below the settled bound (see the top of this file), optionally only
-- streams starting with `stream_prefix`. One statement: the bound and the rows
-- come from the same snapshot.
create or replace function events.read(
  after_position bigint,
  max_count integer default 100,
  stream_prefix text default null
) returns table (
  "position" bigint, stream text, type text, data jsonb, metadata jsonb, version bigint,
  created_at timestamptz
)
language sql stable security definer set search_path = ''
as $$
  select e.position, e.stream, e.type, e.data, e.metadata, e.version, e.created_at
  from events.events e
  where e.position > coalesce(read.after_position, 0)
    and e.position < events.settled_bound()
    and (read.stream_prefix is null or starts_with(e.stream, read.stream_prefix))
  order by e.position
  limit least(greatest(coalesce(read.max_count, 100), 1), 10000)
$$;

-- Reads one stream in version order (rebuilding an aggregate). Unlike read, it
-- shows a stream's events as soon as they commit: versions are dense and
-- serialised per stream, so a reader of one stream cannot skip.
create or replace function events.read_stream(
  stream text,
  after_version bigint default 0,
  max_count integer default 1000
) returns table (
  "position" bigint, stream text, type text, data jsonb, metadata jsonb, version bigint,
  created_at timestamptz
)
language sql stable security definer set search_path = ''
as $$
  select e.position, e.stream, e.type, e.data, e.metadata, e.version, e.created_at
  from events.events e
  where e.stream = read_stream.stream and e.version > coalesce(read_stream.after_version, 0)
  order by e.version
  limit least(greatest(coalesce(read_stream.max_count, 1000), 1), 10000)
$$;

-- Turns row changes of any table into events in the writer's transaction: if the
-- change rolls back, so does the event.
--   after insert or update or delete on <table> for each row
--   execute function events.append_row_change('<stream prefix>' [, '<id column>' [, '<type prefix>']])
-- Stream `<prefix>-<row id>` (id column default `id`), type `<type prefix>.inserted|
-- updated|deleted` (type prefix default: the table's name), data the new row (the
-- old one for a delete), metadata {"schema", "table", "op"} plus `traceparent`
-- from the transaction setting events.traceparent when set. A row too large is
-- refused (54000): the write and its event commit together or not at all.
-- Security definer: the writer (say `authenticated`) needs no privilege on events.
create or replace function events.append_row_change()
returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_prefix text := tg_argv[0];
  v_id_column text := coalesce(tg_argv[1], 'id');
  v_row jsonb := to_jsonb(case when tg_op = 'DELETE' then old else new end);
  v_id text;
  v_type text;
  v_meta jsonb := jsonb_build_object('schema', tg_table_schema, 'table', tg_table_name,
    'op', lower(tg_op));
begin
  if v_prefix is null or v_prefix = '' then
    raise exception 'events.append_row_change: pass the stream prefix as the first trigger argument'
      using errcode = '22023';
  end if;
  v_id := v_row ->> v_id_column;
  if v_id is null then
    raise exception 'events.append_row_change: %.% has no value in column %', tg_table_schema,
      tg_table_name, v_id_column using errcode = '22023';
  end if;
  v_type := coalesce(tg_argv[2], tg_table_name) || case tg_op when 'INSERT' then '.inserted'
    when 'UPDATE' then '.updated' else '.deleted' end;
  perform events._check_event(null, v_type, v_row, v_meta);
  perform events._append(v_prefix || '-' || v_id, array[v_type], array[v_row], array[v_meta], null);
  return null; -- AFTER trigger: the return value is ignored
end
$$;

-- Functions are executable by PUBLIC by default: take that away, then grant the
-- API (not the internal helpers) to service_role only.
revoke all on all functions in schema events from public, anon, authenticated;
grant execute on function
  events.max_event_bytes(),
  events.max_batch(),
  events.settled_bound(),
  events.append(text, text, jsonb, jsonb, bigint),
  events.append_many(text, jsonb, bigint),
  events.read(bigint, integer, text),
  events.read_stream(text, bigint, integer),
  events.append_row_change()
to service_role;
