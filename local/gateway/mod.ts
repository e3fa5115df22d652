/**
 * The local API gateway on 127.0.0.1:54321: a TCP front (request-head limit,
 * answers for dropped requests), the handler that routes `/functions/v1/<name>`
 * and serves the JWKS, the `verify_jwt` gate, the proxy to a function's
 * process and the gateway's own problem answers.
 */
export { createGateway, type GatewayDeps } from "./handler.ts";
export { type Front, type ResponseStreaming, serveWithFront } from "./tcp_front.ts";
