/**
 * The gateway's own error answers (unknown function, bad path, crash, timeout,
 * missing JWT). They come from the local gateway, as the hosted platform's
 * relay answers these cases itself, but they are built by the functions'
 * `problemResponse`, so a client sees one problem vocabulary
 * (`urn:supabase-starter:problem:<code>`) whoever answered.
 */
import { HttpError, problemResponse } from "../../supabase/functions/_shared/http/mod.ts";

/** Fields of a gateway problem; `code` is snake_case, like the functions' codes. */
export interface GatewayProblem {
  status: number;
  code: string;
  title?: string;
  detail: string;
  headers?: Record<string, string>;
}

/** Headers every gateway answer carries, so browsers can read its errors too. */
const GATEWAY_CORS_HEADERS: Readonly<Record<string, string>> = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "X-Request-Id, Retry-After, sb-error-code",
};

/** Builds an `application/problem+json` response carrying the request id. */
export function gatewayProblem(problem: GatewayProblem, requestId: string): Response {
  const res = problemResponse(
    new HttpError({
      status: problem.status,
      code: problem.code,
      title: problem.title,
      detail: problem.detail,
      headers: problem.headers,
      // The gateway's details name the local cause (crash, timeout) and hold no secrets.
      expose: true,
    }),
    requestId,
  );
  res.headers.set("x-request-id", requestId);
  for (const [name, value] of Object.entries(GATEWAY_CORS_HEADERS)) res.headers.set(name, value);
  return res;
}

/** A gateway problem as the bytes of a complete HTTP/1.1 answer, for the TCP front. */
export async function rawGatewayProblem(
  problem: GatewayProblem & { title: string },
  requestId: string,
): Promise<Uint8Array> {
  const res = gatewayProblem(problem, requestId);
  const body = new Uint8Array(await res.arrayBuffer());
  let head = `HTTP/1.1 ${problem.status} ${problem.title}\r\n`;
  for (const [name, value] of res.headers) head += `${name}: ${value}\r\n`;
  head += `content-length: ${body.byteLength}\r\nconnection: close\r\n\r\n`;
  const headBytes = new TextEncoder().encode(head);
  const out = new Uint8Array(headBytes.byteLength + body.byteLength);
  out.set(headBytes);
  out.set(body, headBytes.byteLength);
  return out;
}
