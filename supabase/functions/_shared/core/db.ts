/**
 * Postgres access for functions: one small postgres.js pool per isolate,
 * loaded on first use (postgres.js costs tens of ms of cold start), and
 * `asUser`, which runs a transaction as the caller so RLS scopes the rows.
 */
import type { Sql, TransactionSql } from "npm:postgres@3";
import { LayerError } from "./errors.ts";

export type { Sql, TransactionSql };

/** Options of {@link createDatabase}. */
export interface DatabaseOptions {
  /** Connections per isolate; isolates are many, so keep it small. */
  max?: number;
  idleTimeoutSeconds?: number;
  connectTimeoutSeconds?: number;
}

/** Who `asUser` runs as (an auth context fits): a user's role and claims, or anon. */
export interface DbCaller {
  mode: string;
  role: string | null;
  claims: Record<string, unknown> | null;
}

/** A lazily connected database handle. */
export interface Database {
  /** The postgres.js client (created on first call). */
  sql(): Promise<Sql>;
  /**
   * Runs `fn` in a transaction as the caller: `role` and `request.jwt.claims`
   * are set locally, exactly as PostgREST does, so policies using `auth.uid()` apply.
   */
  asUser<T>(auth: DbCaller, fn: (tx: TransactionSql) => Promise<T>): Promise<T>;
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

/** Why the database could not serve a call: unreachable, not configured, or a role `asUser` refuses. */
export type DatabaseErrorCode =
  | "database_unavailable"
  | "database_not_configured"
  | "forbidden_role";

/** An error of the database layer (http/problem.ts maps it: 503, 503, 403). */
export class DatabaseError extends LayerError {
  override readonly name = "DatabaseError";
  declare readonly code: DatabaseErrorCode;
  constructor(code: DatabaseErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Creates a handle for `url` (null: every use answers 503 `database_not_configured`). */
export function createDatabase(url: string | null, options: DatabaseOptions = {}): Database {
  let client: Promise<Sql> | null = null;
  const sql = () => {
    if (!url) {
      return Promise.reject(
        new DatabaseError(
          "database_not_configured",
          "No database is configured for this function.",
        ),
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
    async asUser<T>(auth: DbCaller, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
      const role = auth.mode === "user" ? (auth.role ?? "authenticated") : "anon";
      if (!USER_ROLES.has(role)) {
        throw new DatabaseError("forbidden_role", `Role ${role} cannot query as a user.`);
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
        // Handlers may still inspect the SQLSTATE; http/problem.ts maps the rest once.
        throw isConnectionError(error)
          ? new DatabaseError("database_unavailable", "The database is unavailable.", {
            cause: error,
          })
          : error;
      }
    },
    async close() {
      if (client) await (await client).end({ timeout: 5 });
      client = null;
    },
  };
}
