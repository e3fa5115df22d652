/**
 * `api`: the example function. Action routing (POST {"action","payload"}):
 * - `echo`       (user or publishable key) returns the message it was sent;
 * - `whoami`     (user) returns who the caller is;
 * - `notes.create` / `notes.list` / `notes.update` / `notes.delete` (user) run as
 *   the caller under RLS;
 * - `notes.activity` (user) reads the caller's row of the `note_activity` read model;
 * - `checkout.start` / `checkout.status` (user) start the `order.checkout` saga
 *   and read the caller's own runs (docs/workflows.md).
 *
 * Events: the note commands append none themselves. The trigger on public.notes
 * appends `notes.inserted|updated|deleted` in the writer's transaction for every
 * writer (this function, supabase-js through PostgREST, SQL), so an append here
 * would only duplicate it; and the log is service_role only, while these
 * commands run as the user.
 *
 * Checkouts go through the SQL API (`workflows.start`, `workflows.status`), not
 * the TypeScript engine: this function only starts and reads runs, and the
 * engine would cost it cold start; queue-worker runs them.
 */
// zod/mini: the same zod 4 engine (checks, issues, messages) with functions in
// place of methods, so `deno bundle` and the deploy bundler keep only what is
// used. Full `zod` (`z.string().min(1)`) works the same here; README, "Cold
// start", gives what each costs.
import * as z from "npm:zod@4/mini";
import en from "npm:zod@4/v4/locales/en.js";
// Only the HTTP part of the shared module: a function pays at cold start for the
// modules it imports, and this one needs no queue, breakers, events or workflows.
import { action, defineFunction, type FunctionSpec, HttpError } from "../_shared/http/mod.ts";

// zod/mini carries no messages until a locale is chosen: the same English ones as zod.
z.config(en());

/** The saga queue-worker runs (supabase/functions/_shared/workflows/examples). */
const ORDER_CHECKOUT = "order.checkout";

/** Demo pricing: every unit costs this much (a real shop reads its price list). */
const UNIT_PRICE_CENTS = 1_000;

const noteRow = (
  r: { id: string | number; body: string; created_at: Date },
) => ({
  id: Number(r.id),
  body: r.body,
  createdAt: r.created_at.toISOString(),
});

const noteId = z.int().check(z.gte(1), z.lte(Number.MAX_SAFE_INTEGER));
const noteBody = z.string().check(
  z.trim(),
  z.minLength(1),
  z.maxLength(10_000),
);

/** RLS hides other users' notes, so "not yours" and "does not exist" are one answer. */
const noteNotFound = () =>
  new HttpError({
    status: 404,
    code: "note_not_found",
    detail: "No such note.",
  });

/** The spec, exported so tests can build the function with their own env. */
export const apiSpec: FunctionSpec = {
  name: "api",
  auth: "user",
  actions: {
    echo: action({
      auth: ["user", "publishable"],
      input: z.object({
        message: z.string().check(z.minLength(1), z.maxLength(1000)),
      }),
      handler: ({ message }) => ({ message }),
    }),

    whoami: action({
      input: z.object({}),
      handler: (_input, { auth }) => ({
        sub: auth.sub,
        role: auth.role,
        email: auth.email,
        authMode: auth.mode,
      }),
    }),

    "notes.create": action({
      // Per user, enforced in Postgres across every isolate (429 + RateLimit headers).
      rateLimit: { limit: 30, periodSeconds: 60, key: "user" },
      input: z.object({ body: noteBody }),
      handler: ({ body }, { auth, db }) =>
        db.asUser(auth, async (tx) => {
          const [row] = await tx`
            insert into public.notes (body) values (${body})
            returning id, body, created_at`;
          return noteRow(row as Parameters<typeof noteRow>[0]);
        }),
    }),

    "notes.list": action({
      input: z.object({
        limit: z._default(z.int().check(z.gte(1), z.lte(100)), 20),
      }),
      handler: ({ limit }, { auth, db }) =>
        db.asUser(auth, async (tx) => {
          // No WHERE on user_id: row-level security returns only the caller's notes.
          const rows = await tx`
            select id, body, created_at from public.notes
            order by created_at desc, id desc limit ${limit}`;
          return rows.map((r) => noteRow(r as Parameters<typeof noteRow>[0]));
        }),
    }),

    "notes.update": action({
      rateLimit: { limit: 30, periodSeconds: 60, key: "user" },
      input: z.object({ id: noteId, body: noteBody }),
      handler: ({ id, body }, { auth, db }) =>
        db.asUser(auth, async (tx) => {
          const [row] = await tx`
            update public.notes set body = ${body} where id = ${id}
            returning id, body, created_at`;
          if (!row) throw noteNotFound();
          return noteRow(row as Parameters<typeof noteRow>[0]);
        }),
    }),

    "notes.delete": action({
      rateLimit: { limit: 30, periodSeconds: 60, key: "user" },
      input: z.object({ id: noteId }),
      handler: ({ id }, { auth, db }) =>
        db.asUser(auth, async (tx) => {
          const [row] = await tx`delete from public.notes where id = ${id} returning id`;
          if (!row) throw noteNotFound();
          return { id, deleted: true };
        }),
    }),

    "notes.activity": action({
      input: z.object({}),
      handler: (_input, { auth, db }) =>
        db.asUser(auth, async (tx) => {
          // The read model the note-activity projection keeps; RLS returns only the caller's row.
          // It trails the notes by the projection's lag (eventually consistent).
          const [row] = await tx`select notes_count, last_activity_at from public.note_activity`;
          return {
            notesCount: row ? Number(row.notes_count) : 0,
            lastActivityAt: row ? (row.last_activity_at as Date).toISOString() : null,
          };
        }),
    }),

    "checkout.start": action({
      rateLimit: { limit: 30, periodSeconds: 60, key: "user" },
      input: z.object({
        sku: z.string().check(z.minLength(1), z.maxLength(100)),
        quantity: z.int().check(z.gte(1), z.lte(100)),
        // The client's key for this order: a retried request returns the same run.
        orderKey: z.string().check(z.minLength(1), z.maxLength(100)),
      }),
      handler: async ({ sku, quantity, orderKey }, { auth, db, req }) => {
        const sql = await db.sql();
        // The saga's input is built here from checked fields, so it fits the
        // workflow's schema by construction; queue-worker validates it again.
        const input = {
          userId: auth.sub,
          sku,
          quantity,
          amountCents: quantity * UNIT_PRICE_CENTS,
        };
        const [row] = await sql<{ id: string }[]>`
          select workflows.start(${ORDER_CHECKOUT}, ${sql.json(input as never)}::jsonb,
            ${`${auth.sub}:${orderKey}`}, ${auth.sub ?? null}::uuid,
            ${req.headers.get("traceparent")}) as id`;
        return { runId: Number(row!.id) };
      },
    }),

    "checkout.status": action({
      input: z.object({ runId: z.int().check(z.gte(1)) }),
      handler: async ({ runId }, { auth, db }) => {
        // The owner check is in the query: another user's run reads as not found.
        const sql = await db.sql();
        const [row] = await sql`
          select workflows.status(r.id) as status from workflows.runs r
          where r.id = ${runId} and r.workflow_name = ${ORDER_CHECKOUT}
            and r.owner_id::text = ${auth.sub ?? ""}`;
        if (!row) {
          throw new HttpError({
            status: 404,
            code: "run_not_found",
            detail: "No such checkout.",
          });
        }
        return row.status;
      },
    }),
  },
};

export default defineFunction(apiSpec);
