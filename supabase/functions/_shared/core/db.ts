/**
 * Postgres access for functions: one small postgres.js pool per isolate,
 * loaded on first use (postgres.js costs tens of ms of cold start), and
 * `asUser`, which runs a transaction as the caller so RLS scopes the rows.
 */
import type { Sql, TransactionSql } from "npm:postgres@3";
import type { AuthContext } from "../auth/authenticate.ts";
import { HttpError } from "../http/problem.ts";

export type { Sql, TransactionSql };

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  /** Connections per isolate; isolates are many, so keep it small. */
  max?: number;
  idleTimeoutSeconds?: number;
  connectTimeoutSeconds?: number;
}

/** A lazily connected database handle. */
export interface Database {
  /** The postgres.js client (created on first call). */
  sql(): Promise<Sql>;
  /**
   * Runs `fn` in a transaction as the caller: `role` and `request.jwt.claims`
   * are set locally, exactly as PostgREST does, so policies using `auth.uid()` apply.
   */
  asUser<T>(auth: AuthContext, fn: (tx: TransactionSql) => Promise<T>): Promise<T>;
  /** Closes the pool (tests, shutdown). */
  close(): Promise<void>;
}

const USER_ROLES = new Set(["anon", "authenticated"]);

/** True for errors that mean "the database cannot be reached", not "the query is wrong". */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code ?? "";
  return [
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
    "57P01", // admin_shutdown
    "57P03", // cannot_connect_now
    "53300", // too_many_connections
  ].includes(code) || error instanceof Deno.errors.ConnectionRefused;
}

/** The five-character SQLSTATE of a Postgres error, or null for anything else. */
export function sqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/**
 * True for errors caused by the statement's input, not the server's health:
 * SQLSTATE classes 22 (data exception), 23 (integrity constraint) and 42
 * (syntax error or access rule violation).
 */
export function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  if (state === null) return false;
  const cls = state.slice(0, 2);
  return cls === "22" || cls === "23" || cls === "42";
}

/**
 * The one mapping from database errors to HTTP: unreachable database 503 (with
 * Retry-After); the caller's own fault 4xx: a value Postgres cannot take
 * (class 22) or a broken data rule (class 23) 422, a unique or exclusion
 * conflict 409, a privilege the caller's role lacks (42501) 403. Details name
 * no table, column or SQL. Anything else passes through (a 500).
 */
export function databaseError(error: unknown): unknown {
  if (isConnectionError(error)) {
    return new HttpError({
      status: 503,
      code: "database_unavailable",
      detail: "The database is unavailable; try again shortly.",
      headers: { "retry-after": "5" },
      cause: error,
    });
  }
  const state = sqlState(error);
  if (state === null) return error;
  if (state === "42501") {
    return new HttpError({
      status: 403,
      code: "insufficient_privilege",
      detail: "The caller's role may not do this.",
      cause: error,
    });
  }
  if (state.startsWith("22")) {
    return new HttpError({
      status: 422,
      code: "invalid_value",
      detail: "A value in the request cannot be stored (e.g. a NUL character, or out of range).",
      cause: error,
    });
  }
  if (state === "23505" || state === "23P01") {
    return new HttpError({
      status: 409,
      code: "conflict",
      detail: "The request conflicts with data that already exists.",
      cause: error,
    });
  }
  if (state.startsWith("23")) {
    return new HttpError({
      status: 422,
      code: "constraint_violation",
      detail: "A value in the request breaks a rule of the stored data.",
      cause: error,
    });
  }
  return error;
}

/** Creates a handle for `url` (null: every use answers 503 `database_not_configured`). */
export function createDatabase(url: string | null, options: DatabaseOptions = {}): Database {
  let client: Promise<Sql> | null = null;
  const sql = () => {
    if (!url) {
      return Promise.reject(
        new HttpError({
          status: 503,
          code: "database_not_configured",
          detail: "No database is configured for this function.",
          expose: false,
        }),
      );
    }
    client ??= import("npm:postgres@3").then(({ default: postgres }) =>
      postgres(url, {
        max: options.max ?? 3,
        idle_timeout: options.idleTimeoutSeconds ?? 20,
        connect_timeout: options.connectTimeoutSeconds ?? 5,
        // Supavisor's transaction mode (port 6543) cannot hold prepared statements.
        prepare: !/:6543\//.test(url),
        onnotice: () => {},
      })
    );
    return client;
  };
  return {
    sql,
    async asUser<T>(auth: AuthContext, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
      const role = auth.mode === "user" ? (auth.role ?? "authenticated") : "anon";
      if (!USER_ROLES.has(role)) {
        throw new HttpError({
          status: 403,
          code: "forbidden_role",
          detail: `Role ${role} cannot query as a user.`,
        });
      }
      const claims = JSON.stringify(auth.claims ?? { role });
      try {
        const db = await sql();
        return await db.begin(async (tx) => {
          await tx`select set_config('role', ${role}, true),
                          set_config('request.jwt.claims', ${claims}, true)`;
          return await fn(tx);
        }) as T;
      } catch (error) {
        // Handlers may still inspect the SQLSTATE; the pipeline maps the rest once.
        throw isConnectionError(error) ? databaseError(error) : error;
      }
    },
    async close() {
      if (client) await (await client).end({ timeout: 5 });
      client = null;
    },
  };
}
