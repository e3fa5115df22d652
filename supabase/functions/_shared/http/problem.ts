/**
 * Typed HTTP errors and the single mapping from any thrown value to an RFC 9457
 * `application/problem+json` response (DESIGN §4.2).
 */

/** One field-level validation problem; `pointer` is a JSON Pointer into the request body. */
export interface FieldError {
  pointer: string;
  detail: string;
}

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
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly errors: FieldError[] | undefined;
  readonly expose: boolean;

  constructor(init: HttpErrorInit) {
    super(init.detail ?? init.code, { cause: init.cause });
    this.name = "HttpError";
    this.status = init.status;
    this.code = init.code;
    this.title = init.title ?? TITLES[init.status] ?? "Error";
    this.detail = init.detail;
    this.headers = init.headers;
    this.errors = init.errors;
    this.expose = init.expose ?? init.status < 500;
  }
}

/** Prefix of every problem `type` URI; the code completes it. */
export const PROBLEM_TYPE_BASE = "urn:supabase-starter:problem:";

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

/** Normalises anything thrown into an {@link HttpError} (unknown errors become a 500). */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  return new HttpError({ status: 500, code: "internal_error", expose: false, cause: error });
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
