/**
 * The event log's typed errors. SQL raises SQLSTATEs (docs/events.md "Errors");
 * {@link eventsErrorFrom} turns them into these, and http/problem.ts maps these
 * to 409, 422 and 413.
 */
import { sqlState } from "../core/db.ts";
import { LayerError } from "../core/errors.ts";

/** The stream is not at the version the caller expected (SQLSTATE P0409; HTTP 409). */
export class WrongExpectedVersionError extends LayerError {
  override readonly name = "WrongExpectedVersionError";
  readonly status = 409;
  constructor(
    readonly stream: string,
    readonly expectedVersion: number,
    /** The stream's version when the append was refused (null if Postgres did not say). */
    readonly actualVersion: number | null,
    options?: { cause?: unknown },
  ) {
    super(
      "wrong_expected_version",
      `stream ${stream} is at version ${actualVersion ?? "?"}, expected version ${expectedVersion}`,
      options,
    );
  }
}

/** An event or argument the log refuses: bad stream, type, data or metadata (22023; HTTP 422). */
export class InvalidEventError extends LayerError {
  override readonly name = "InvalidEventError";
  readonly status = 422;
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_event", message, options);
  }
}

/** An event over `events.max_event_bytes()`, or a batch over the limits (54000; HTTP 413). */
export class EventTooLargeError extends LayerError {
  override readonly name = "EventTooLargeError";
  readonly status = 413;
  constructor(message: string, options?: { cause?: unknown }) {
    super("event_too_large", message, options);
  }
}

/** The typed error for a Postgres error raised by the events API, or the error itself. */
export function eventsErrorFrom(
  error: unknown,
  context: { stream: string; expectedVersion?: number | null },
): unknown {
  const message = (error as { message?: unknown } | null)?.message;
  const text = typeof message === "string" ? message : "events: refused";
  switch (sqlState(error)) {
    case "P0409": {
      const detail = String((error as { detail?: unknown }).detail ?? "");
      const actual = /actual=(\d+)/.exec(detail)?.[1];
      return new WrongExpectedVersionError(
        context.stream,
        context.expectedVersion ?? -1,
        actual === undefined ? null : Number(actual),
        { cause: error },
      );
    }
    case "22023":
      return new InvalidEventError(text, { cause: error });
    case "54000":
      return new EventTooLargeError(text, { cause: error });
    default:
      return error;
  }
}
