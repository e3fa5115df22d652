-- The queue tables are reached only through the security definer functions of
-- schema `queue` (which run as the owner) and by service_role (which bypasses
-- RLS). RLS is on so that a stray grant can never expose a row; these explicit
-- deny-all policies state that intent (and satisfy the `rls_enabled_no_policy`
-- advisor) without opening anything.
create policy "no direct access" on queue.jobs
  as restrictive for all to public using (false) with check (false);

create policy "no direct access" on queue.dead_letters
  as restrictive for all to public using (false) with check (false);
