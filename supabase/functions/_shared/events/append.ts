/**
 * Appending from TypeScript: events are checked before they reach SQL (a clear
 * error, nothing appended), then written with `events.append_many`, all or
 * nothing. Pass a transaction as `sql` to append in the same transaction as the
 * state change that caused the events.
 *
 * @example
 * const { version } = await appendEvents(sql, "order-42", [
 *   { type: "order.paid", data: { amount: 1200 } },
 * ], { expectedVersion: 3 });
 */
import type { Queryable } from "../queue/enqueue.ts";
import { eventsErrorFrom, EventTooLargeError, InvalidEventError } from "./errors.ts";

/** One event to append. `data` and `metadata` are plain JSON objects. */
export interface NewEvent {
  type: string;
  data: Record<string, unknown>;
  /** Merged with the transaction's trace context (`metadata.traceparent`) by SQL. */
  metadata?: Record<string, unknown>;
}

/** Options of {@link appendEvents}. */
export interface AppendOptions {
  /** The stream's current version (0: no events yet); a mismatch throws WrongExpectedVersionError. */
  expectedVersion?: number;
}

/**
 * Where the events landed: their global positions (in input order; decimal strings, as they may
 * pass 2^53: compare with BigInt, never compute with them) and the stream's new version.
 */
export interface AppendResult {
  positions: string[];
  /** The stream's version after the append: the next `expectedVersion`. */
  version: number;
}

/** `events.max_event_bytes()`: data + metadata, as JSON text. */
export const MAX_EVENT_BYTES = 1_048_576;
/** `events.max_batch()`: events per call. */
export const MAX_APPEND_BATCH = 10_000;

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const utf8 = new TextEncoder();

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkName(what: string, value: unknown): void {
  if (typeof value !== "string" || value.length < 1 || value.length > 200 || CONTROL.test(value)) {
    throw new InvalidEventError(
      `${what} must be a string of 1..200 characters without control characters`,
    );
  }
}

/** JSON text of a value, or a clear error for what JSON cannot hold (BigInt, cycles). */
function toJson(what: string, value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    throw new InvalidEventError(`${what} is not JSON-serialisable`, { cause: error });
  }
}

/** The checked JSON array for `events.append_many`. */
function batchJson(events: readonly NewEvent[]): string {
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_APPEND_BATCH) {
    throw new InvalidEventError(`appendEvents takes 1..${MAX_APPEND_BATCH} events`);
  }
  const parts = events.map((e, i) => {
    if (!isPlainObject(e)) throw new InvalidEventError(`event ${i} must be an object`);
    checkName(`event ${i}: type`, e.type);
    if (!isPlainObject(e.data)) {
      throw new InvalidEventError(`event ${i}: data must be a plain JSON object`);
    }
    if (e.metadata !== undefined && !isPlainObject(e.metadata)) {
      throw new InvalidEventError(`event ${i}: metadata must be a plain JSON object`);
    }
    const data = toJson(`event ${i}: data`, e.data);
    const metadata = toJson(`event ${i}: metadata`, e.metadata ?? {});
    // UTF-16 length first: cheap, and only near the limit is the byte count needed.
    const size = data.length + metadata.length;
    if (size * 3 > MAX_EVENT_BYTES) {
      const bytes = utf8.encode(data).length + utf8.encode(metadata).length;
      if (bytes > MAX_EVENT_BYTES) {
        throw new EventTooLargeError(
          `event ${i} is ${bytes} bytes of data + metadata; the limit is ${MAX_EVENT_BYTES}` +
            " (store large payloads in Storage and append a reference)",
        );
      }
    }
    return `{"type":${JSON.stringify(e.type)},"data":${data},"metadata":${metadata}}`;
  });
  return "[" + parts.join(",") + "]";
}

/**
 * Appends events to one stream, all or nothing, in order. Throws
 * WrongExpectedVersionError (409), InvalidEventError (422) or EventTooLargeError (413).
 */
export async function appendEvents(
  sql: Queryable,
  stream: string,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  checkName("stream", stream);
  const expected = options.expectedVersion;
  if (expected !== undefined && !(Number.isSafeInteger(expected) && expected >= 0)) {
    throw new InvalidEventError("expectedVersion must be an integer >= 0");
  }
  const json = batchJson(events);
  const rows = await sql.unsafe<{ position: string; version: string }[]>(
    'select "position", version from events.append_many($1, $2::text::jsonb, $3)',
    [stream, json, expected ?? null],
  ).catch((error: unknown) => {
    throw eventsErrorFrom(error, { stream, expectedVersion: expected });
  });
  return {
    positions: rows.map((r) => String(r.position)),
    version: Number(rows[rows.length - 1]!.version),
  };
}
