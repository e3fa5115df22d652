/**
 * Postgres-backed rate limiting: one call to `resilience.rate_limit` (GCRA, one
 * SQL statement) per decision, so every isolate shares the same counters.
 *
 * @example
 * const policy = { name: "default", limit: 100, periodSeconds: 60 };
 * const d = await rateLimit(policy, `user:${sub}`, { sql });
 * if (!d.allowed) throw new RateLimitedError(d, policy);
 */
import type { Sql } from "npm:postgres@3";
import { defaultIsFailure } from "../breaker/errors.ts";
import { CircuitBreaker } from "../breaker/circuit_breaker.ts";
import { isDataError, sqlState } from "../../core/db.ts";
import { errorMessage } from "../../core/errors.ts";
import type { WarnLog } from "../../core/log.ts";
import { abortable, type Clock } from "../../core/time.ts";

/** A limit: `limit` units per `periodSeconds`, bursts of up to `limit`. */
export interface RateLimitRule {
  /** Appears in the RateLimit headers; also namespaces the stored keys. */
  name: string;
  limit: number;
  periodSeconds: number;
  /** Units one request spends (default 1). */
  cost?: number;
  /** When the store is unreachable: admit (`open`, default, logged) or refuse (`closed`). */
  onStoreError?: "open" | "closed";
  /** Time budget of one decision before the store counts as unreachable (default 500 ms). */
  timeoutMs?: number;
}

/** The outcome of one decision, in the units of the IETF RateLimit headers. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Units left right after this decision. */
  remaining: number;
  /** Seconds until the quota is whole again. */
  resetSeconds: number;
  /** Seconds to wait before retrying (0 when allowed). */
  retryAfterSeconds: number;
  /** Set when the store could not be asked and the rule's `onStoreError` decided. */
  degraded?: "open" | "closed";
}

/** Injected collaborators. */
export interface RateLimitDeps {
  sql: Sql;
  log?: WarnLog;
  /**
   * Guards the store: when Postgres is down, decisions stop waiting for it.
   * Default: one breaker per `sql` client.
   */
  breaker?: CircuitBreaker;
  /** The default breaker's clock (default: Date.now). */
  now?: Clock;
}

const storeBreakers = new WeakMap<Sql, CircuitBreaker>();

/** The breaker guarding decisions made through `sql` (one per client; the first caller's clock). */
export function storeBreaker(sql: Sql, now: Clock = Date.now): CircuitBreaker {
  let b = storeBreakers.get(sql);
  if (!b) {
    b = new CircuitBreaker({
      key: "rate-limit-store",
      policies: [{ kind: "consecutive", failures: 3 }],
      openMs: 5_000,
      isFailure: isStoreOutage,
    }, { now });
    storeBreakers.set(sql, b);
  }
  return b;
}

const consoleWarn: WarnLog = {
  warn: (msg, fields) => console.warn(JSON.stringify({ level: "warn", msg, ...fields })),
};

interface Row {
  allowed: boolean;
  remaining: number;
  reset_ms: number;
  retry_after_ms: number;
}

/**
 * Whether a store error counts against the store's breaker: a statement the
 * store refused for its input (SQLSTATE 22/23/42, or 54, a program limit such
 * as an oversized index entry) says nothing about the store's health, and
 * counting it would let one odd key switch limiting off for everyone.
 */
export function isStoreOutage(error: unknown): boolean {
  if (isDataError(error) || sqlState(error)?.startsWith("54")) return false;
  return defaultIsFailure(error);
}

/** Keys stored as given up to this many UTF-8 bytes; a btree entry must stay well under 2.7 kB. */
export const MAX_PLAIN_KEY_BYTES = 200;
const HASHED = "#";
const encoder = new TextEncoder();

/**
 * The key as stored: `<rule>:<key>` when it is short, well-formed and free of
 * NUL (which Postgres text cannot hold), else `#` and the base64url SHA-256 of
 * its UTF-16 code units (injective even for lone surrogates, which UTF-8
 * encoding would fold into one replacement character). Plain keys never start
 * with `#`, so the two forms cannot meet.
 */
export async function storedKey(ruleName: string, key: string): Promise<string> {
  const full = `${ruleName}:${key}`;
  // A UTF-16 unit encodes to at most 3 UTF-8 bytes: short keys skip the encoding.
  if (
    !full.startsWith(HASHED) && !full.includes("\0") && full.isWellFormed() &&
    (full.length * 3 <= MAX_PLAIN_KEY_BYTES ||
      encoder.encode(full).byteLength <= MAX_PLAIN_KEY_BYTES)
  ) return full;
  const units = new Uint16Array(full.length);
  for (let i = 0; i < full.length; i++) units[i] = full.charCodeAt(i);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", units));
  return HASHED + btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** The SQL function takes integer milliseconds and units. */
const MAX_INT4 = 2_147_483_647;

/** Validates a rule; a wrong rule is a programming error, thrown at once. */
export function checkRule(rule: RateLimitRule): void {
  const cost = rule.cost ?? 1;
  if (!Number.isInteger(rule.limit) || rule.limit < 1 || rule.limit > MAX_INT4) {
    throw new RangeError("limit must be an integer in 1..2147483647");
  }
  if (!(rule.periodSeconds > 0) || Math.round(rule.periodSeconds * 1000) > MAX_INT4) {
    throw new RangeError("periodSeconds must be > 0 and at most 2147483.647");
  }
  if (!Number.isInteger(cost) || cost < 1 || cost > rule.limit) {
    throw new RangeError("cost must be an integer in 1..limit");
  }
}

/** Takes one decision for `key` under `rule`. Never throws for store failures. */
export async function rateLimit(
  rule: RateLimitRule,
  key: string,
  deps: RateLimitDeps,
): Promise<RateLimitDecision> {
  checkRule(rule);
  const periodMs = Math.round(rule.periodSeconds * 1000);
  const breaker = deps.breaker ?? storeBreaker(deps.sql, deps.now);
  const stored = await storedKey(rule.name, key);
  try {
    const rows = await breaker.execute(
      (signal) =>
        abortable(
          deps.sql<Row[]>`
            select * from resilience.rate_limit(
              ${stored}, ${rule.limit}, ${periodMs}, ${rule.cost ?? 1}
            )`,
          signal,
        ),
      { timeoutMs: rule.timeoutMs ?? 500 },
    );
    const row = rows[0]!;
    return {
      allowed: row.allowed,
      limit: rule.limit,
      remaining: row.remaining,
      resetSeconds: Math.ceil(row.reset_ms / 1000),
      retryAfterSeconds: row.allowed ? 0 : Math.max(1, Math.ceil(row.retry_after_ms / 1000)),
    };
  } catch (error) {
    return storeUnavailable(rule, error, deps.log, breaker.retryAfterMs());
  }
}

/**
 * The decision when the store could not answer: the rule's `onStoreError`
 * decides (default: admit), and a warning is logged either way.
 */
export function storeUnavailable(
  rule: RateLimitRule,
  error: unknown,
  log: WarnLog = consoleWarn,
  retryAfterMs = 0,
): RateLimitDecision {
  const mode = rule.onStoreError ?? "open";
  log.warn("rate limit store unavailable", {
    policy: rule.name,
    failMode: mode,
    error: errorMessage(error),
  });
  const allowed = mode === "open";
  return {
    allowed,
    limit: rule.limit,
    remaining: allowed ? rule.limit : 0,
    resetSeconds: 0,
    // Refusing for lack of a store: ask the client to come back once it may be back.
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(retryAfterMs / 1000)),
    degraded: mode,
  };
}
