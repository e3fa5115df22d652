/**
 * Typed HTTP errors and the single mapping from any thrown value to an RFC 9457
 * `application/problem+json` response (README.md: the table of statuses and codes).
 *
 * Lower layers throw their own errors ({@link LayerError}: env, db, auth, queue,
 * resilience); {@link errorMappers} is the one list that turns them into
 * {@link HttpError}s, and a function may put its own `onError` in front of it.
 */
import { AuthError } from "../auth/authenticate.ts";
import { JwksUnavailableError } from "../auth/jwks.ts";
import { DatabaseError, isConnectionError, sqlState } from "../core/db.ts";
import { EnvError } from "../core/env.ts";
import {
  EventTooLargeError,
  InvalidEventError,
  WrongExpectedVersionError,
} from "../events/errors.ts";
import { LayerError } from "../core/errors.ts";
import type { FieldError } from "../core/json_pointer.ts";
import { JobPayloadError, PayloadTooLargeError } from "../queue/errors.ts";
import { CircuitOpenError } from "../resilience/breaker/errors.ts";
import { RateLimitedError } from "../resilience/rate_limit/limiter.ts";
import { WorkflowInputError } from "../workflows/errors.ts";

export type { FieldError };

/** Construction options for {@link HttpError}. */
export interface HttpErrorInit {
  status: number;
  /** Stable, machine-readable code, e.g. `invalid_token`. */
  code: string;
  title?: string;
  detail?: string;
  headers?: Record<string, string>;
  errors?: FieldError[];
  /** False hides `detail` from the client (server-side faults); default: status < 500. */
  expose?: boolean;
  cause?: unknown;
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** An error that knows its HTTP status and stable code. */
export class HttpError extends LayerError {
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly errors: FieldError[] | undefined;
  readonly expose: boolean;

  constructor(init: HttpErrorInit) {
    super(init.code, init.detail ?? init.code, { cause: init.cause });
    this.name = "HttpError";
    this.status = init.status;
    this.title = init.title ?? TITLES[init.status] ?? "Error";
    this.detail = init.detail;
    this.headers = init.headers;
    this.errors = init.errors;
    this.expose = init.expose ?? init.status < 500;
  }
}

/** Prefix of every problem `type` URI; the code completes it. */
const PROBLEM_TYPE_BASE = "urn:supabase-starter:problem:";

/** The JSON body of a problem response. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
  errors?: FieldError[];
}

/** Turns one kind of lower-layer error into an {@link HttpError}; undefined for any other value. */
type ErrorMapper = (error: unknown) => HttpError | undefined;

const RETRY_SOON = { "retry-after": "5" };

/** Breaker refusal: 503 `circuit_open`, `Retry-After` when it may let a probe through. */
const circuitOpen: ErrorMapper = (e) =>
  e instanceof CircuitOpenError
    ? new HttpError({
      status: 503,
      code: "circuit_open",
      // The key names a dependency, which callers need not know.
      detail: "A dependency is unavailable; try again later.",
      headers: { "retry-after": String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) },
      cause: e,
    })
    : undefined;

/**
 * Postgres errors: unreachable 503 (with Retry-After); the caller's own fault
 * 4xx: a value Postgres cannot take (class 22) or a broken data rule (class 23)
 * 422, a unique or exclusion conflict 409, a privilege the caller's role lacks
 * (42501) 403, a stream not at its expected version (P0409, the event log) 409.
 * Details name no table, column or SQL. Anything else: undefined (a 500).
 */
const postgresError: ErrorMapper = (e) => {
  if (isConnectionError(e)) return databaseUnavailable(e);
  const state = sqlState(e);
  if (state === null) return undefined;
  const caller = (status: number, code: string, detail: string) =>
    new HttpError({ status, code, detail, cause: e });
  if (state === "P0409") {
    // The event log's optimistic concurrency, raised by SQL called without appendEvents.
    return caller(409, "wrong_expected_version", "The stream is not at the expected version.");
  }
  if (state === "42501") {
    return caller(403, "insufficient_privilege", "The caller's role may not do this.");
  }
  if (state.startsWith("22")) {
    return caller(
      422,
      "invalid_value",
      "A value in the request cannot be stored (e.g. a NUL character, or out of range).",
    );
  }
  if (state === "23505" || state === "23P01") {
    return caller(409, "conflict", "The request conflicts with data that already exists.");
  }
  if (state.startsWith("23")) {
    return caller(
      422,
      "constraint_violation",
      "A value in the request breaks a rule of the stored data.",
    );
  }
  return undefined;
};

function databaseUnavailable(cause: unknown): HttpError {
  return new HttpError({
    status: 503,
    code: "database_unavailable",
    detail: "The database is unavailable; try again shortly.",
    headers: RETRY_SOON,
    cause,
  });
}

/** The database layer's own errors: unavailable 503, not configured 503 (hidden), role refused 403. */
const databaseError: ErrorMapper = (e) => {
  if (!(e instanceof DatabaseError)) return undefined;
  if (e.code === "database_unavailable") return databaseUnavailable(e);
  if (e.code === "forbidden_role") {
    return new HttpError({ status: 403, code: e.code, detail: e.message, cause: e });
  }
  return new HttpError({ status: 503, code: e.code, detail: e.message, expose: false, cause: e });
};

/** 401 (with `WWW-Authenticate: Bearer`) or 403 for a refused credential. */
const authError: ErrorMapper = (e) => {
  if (!(e instanceof AuthError)) return undefined;
  if (e.kind === "forbidden") {
    return new HttpError({ status: 403, code: e.code, detail: e.message, cause: e });
  }
  return new HttpError({
    status: 401,
    code: e.code,
    detail: e.message,
    headers: { "www-authenticate": "Bearer" },
    cause: e,
  });
};

/** Signing keys unreachable with none in hand: 503 `jwks_unavailable`, never a 401. */
const jwksUnavailable: ErrorMapper = (e) =>
  e instanceof JwksUnavailableError
    ? new HttpError({ status: 503, code: e.code, detail: e.message, headers: RETRY_SOON, cause: e })
    : undefined;

/** A misconfigured environment: 500 `misconfigured`, the detail only in the log. */
const envError: ErrorMapper = (e) =>
  e instanceof EnvError
    ? new HttpError({ status: 500, code: e.code, detail: e.message, expose: false, cause: e })
    : undefined;

/** 429 `rate_limited`, or 503 `rate_limit_unavailable` (fail-closed, no store), with the RateLimit headers. */
const rateLimited: ErrorMapper = (e) =>
  e instanceof RateLimitedError
    ? new HttpError({
      status: e.status,
      code: e.code,
      detail: e.message,
      headers: e.headers,
      cause: e,
    })
    : undefined;

/** Enqueue refusals that reach HTTP: 422 `invalid_job_payload` (with field errors), 413 too large. */
const queueError: ErrorMapper = (e) => {
  if (e instanceof JobPayloadError) {
    return new HttpError({
      status: 422,
      code: e.code,
      detail: e.message,
      errors: e.errors,
      cause: e,
    });
  }
  if (e instanceof PayloadTooLargeError) {
    return new HttpError({ status: 413, code: e.code, detail: e.message, cause: e });
  }
  return undefined;
};

/** A workflow start whose input fails the workflow's schema: 422 `invalid_workflow_input`. */
const workflowError: ErrorMapper = (e) =>
  e instanceof WorkflowInputError
    ? new HttpError({ status: 422, code: e.code, detail: e.message, errors: e.errors, cause: e })
    : undefined;

/** Event log refusals: 409 `wrong_expected_version`, 422 `invalid_event`, 413 `event_too_large`. */
const eventsError: ErrorMapper = (e) =>
  e instanceof WrongExpectedVersionError || e instanceof InvalidEventError ||
    e instanceof EventTooLargeError
    ? new HttpError({ status: e.status, code: e.code, detail: e.message, cause: e })
    : undefined;

/** Every mapper, tried in order; the first answer wins. */
const errorMappers: readonly ErrorMapper[] = [
  authError,
  jwksUnavailable,
  databaseError,
  postgresError,
  circuitOpen,
  rateLimited,
  queueError,
  workflowError,
  eventsError,
  envError,
];

/**
 * Normalises anything thrown into an {@link HttpError}: HttpErrors pass, layer
 * errors go through {@link errorMappers}, anything else becomes a 500.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  for (const map of errorMappers) {
    const mapped = map(error);
    if (mapped) return mapped;
  }
  return new HttpError({ status: 500, code: "internal_error", expose: false, cause: error });
}

/** Maps a breaker refusal to 503 `circuit_open` with `Retry-After`; other values pass through. */
export function circuitOpenHttpError(error: unknown): unknown {
  return circuitOpen(error) ?? error;
}

/**
 * The one place an error becomes a response. Unknown errors are answered 500
 * with no internal detail; callers log them with the request id.
 */
export function problemResponse(error: unknown, requestId: string): Response {
  const e = toHttpError(error);
  const body: ProblemBody = {
    type: PROBLEM_TYPE_BASE + e.code,
    title: e.title,
    status: e.status,
    detail: e.expose && e.detail ? e.detail : defaultDetail(e.status),
    code: e.code,
    requestId,
  };
  if (e.errors?.length) body.errors = e.errors;
  const headers = new Headers(e.headers);
  headers.set("content-type", "application/problem+json");
  headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(body), { status: e.status, headers });
}

function defaultDetail(status: number): string {
  if (status >= 500) return "The server could not complete the request.";
  return TITLES[status] ?? "The request failed.";
}
