-- The `order.checkout` example saga (docs/workflows.md "The checkout example"):
--   * `public.stock`: units available per SKU; signed-in users may read it;
--   * `public.stock_reservations`: one reservation per checkout run; users read
--     their own; only the workflow (through the definer functions below) writes.
-- Reserving and releasing are idempotent per run: a step retried after a crash
-- (its side effect done, its result not yet recorded) changes nothing twice.

create table public.stock (
  sku text primary key constraint stock_sku_check check (char_length(sku) between 1 and 100),
  available integer not null constraint stock_available_check check (available >= 0)
);

create table public.stock_reservations (
  run_id bigint primary key,
  user_id uuid,
  sku text not null references public.stock (sku),
  quantity integer not null constraint stock_reservations_quantity_check check (quantity > 0),
  released boolean not null default false,
  created_at timestamptz not null default now()
);

alter table public.stock enable row level security;
alter table public.stock_reservations enable row level security;
create policy "stock: signed-in users read" on public.stock
  for select to authenticated using (true);
create policy "stock_reservations: owners read" on public.stock_reservations
  for select to authenticated using (user_id = (select auth.uid()));
revoke all on public.stock, public.stock_reservations from anon, authenticated;
grant select on public.stock, public.stock_reservations to authenticated;

-- Reserves `quantity` of `sku` for run `run_id` once: a second call for the same
-- run returns the first reservation. Raises P0001 'out of stock' when too few are
-- available (the workflow treats it as permanent).
create or replace function workflows.checkout_reserve(
  run_id bigint, user_id uuid, sku text, quantity integer
) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_left integer;
begin
  perform 1 from public.stock_reservations r where r.run_id = checkout_reserve.run_id;
  if found then
    return jsonb_build_object('runId', checkout_reserve.run_id, 'sku', checkout_reserve.sku,
      'quantity', checkout_reserve.quantity);
  end if;
  update public.stock s set available = s.available - checkout_reserve.quantity
  where s.sku = checkout_reserve.sku and s.available >= checkout_reserve.quantity
  returning s.available into v_left;
  if v_left is null then
    raise exception 'out of stock: %', checkout_reserve.sku using errcode = 'P0001';
  end if;
  insert into public.stock_reservations (run_id, user_id, sku, quantity)
  values (checkout_reserve.run_id, checkout_reserve.user_id, checkout_reserve.sku,
    checkout_reserve.quantity);
  return jsonb_build_object('runId', checkout_reserve.run_id, 'sku', checkout_reserve.sku,
    'quantity', checkout_reserve.quantity);
end
$$;

-- Gives a run's reserved units back, once. Returns true when it released them now.
create or replace function workflows.checkout_release(run_id bigint)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_sku text;
  v_quantity integer;
begin
  update public.stock_reservations r set released = true
  where r.run_id = checkout_release.run_id and not r.released
  returning r.sku, r.quantity into v_sku, v_quantity;
  if v_sku is null then
    return false;
  end if;
  update public.stock s set available = s.available + v_quantity where s.sku = v_sku;
  return true;
end
$$;

revoke all on function workflows.checkout_reserve(bigint, uuid, text, integer),
  workflows.checkout_release(bigint) from public, anon, authenticated;
grant execute on function workflows.checkout_reserve(bigint, uuid, text, integer),
  workflows.checkout_release(bigint) to service_role;
