/** Job types that ship with the queue: `webhook.deliver` and its SSRF guard. */
export { assertPublicUrl, DnsLookupError, type SsrfOptions } from "./ssrf.ts";
export { isPrivateAddress } from "./private_address.ts";
export {
  type Breaker,
  webhookDeliverJob,
  type WebhookDeps,
  WebhookHttpError,
  webhookPayload,
} from "./webhook.ts";
export {
  HEADER_LIMITS,
  headerNameProblem,
  headerValueProblem,
  webhookHeaders,
} from "./webhook_headers.ts";
