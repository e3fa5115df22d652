/**
 * `api`: the example function. Action routing (POST {"action","payload"}):
 * - `echo`       (user or publishable key) returns the message it was sent;
 * - `whoami`     (user) returns who the caller is;
 * - `notes.create` / `notes.list` (user) run as the caller under RLS.
 */
// zod/mini: the same zod 4 engine (checks, issues, messages) with functions in
// place of methods, so `deno bundle` and the deploy bundler keep only what is
// used. Full `zod` (`z.string().min(1)`) works the same here; README, "Cold
// start", gives what each costs.
import * as z from "npm:zod@4/mini";
import en from "npm:zod@4/v4/locales/en.js";
// Only the HTTP part of the shared module: a function pays at cold start for the
// modules it imports, and this one needs no queue, breakers or events.
import { action, defineFunction, type FunctionSpec } from "../_shared/http/mod.ts";

// zod/mini carries no messages until a locale is chosen: the same English ones as zod.
z.config(en());

const noteRow = (
  r: { id: string | number; body: string; created_at: Date },
) => ({
  id: Number(r.id),
  body: r.body,
  createdAt: r.created_at.toISOString(),
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
      input: z.object({
        body: z.string().check(z.trim(), z.minLength(1), z.maxLength(10_000)),
      }),
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
  },
};

export default defineFunction(apiSpec);
