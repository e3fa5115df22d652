/**
 * The gateway's own error answers (unknown function, crash, timeout, missing
 * JWT). They come from the local gateway, as the hosted platform's relay
 * answers these cases itself, so they do not go through a function's
 * `_shared/errors.ts`; the body follows the same RFC 9457 shape.
 */

/** Fields of a gateway problem. */
export interface GatewayProblem {
  status: number;
  code: string;
  title: string;
  detail: string;
  headers?: Record<string, string>;
}

/** Builds an `application/problem+json` response carrying the request id. */
export function gatewayProblem(problem: GatewayProblem, requestId: string): Response {
  const body = {
    type: `https://supabase-edge-starter.dev/problems/${problem.code}`,
    title: problem.title,
    status: problem.status,
    detail: problem.detail,
    code: problem.code,
    requestId,
  };
  return new Response(JSON.stringify(body), {
    status: problem.status,
    headers: {
      "content-type": "application/problem+json",
      "x-request-id": requestId,
      // Browsers must be able to read the gateway's errors too.
      "access-control-allow-origin": "*",
      "access-control-expose-headers": "X-Request-Id, Retry-After",
      ...problem.headers,
    },
  });
}
