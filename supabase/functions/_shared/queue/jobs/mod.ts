/** Job types that ship with the queue: `webhook.deliver` and its SSRF guard. */
export { assertPublicUrl, DnsLookupError, type SsrfOptions } from "./ssrf.ts";
export { isPrivateAddress } from "./private_address.ts";
export { type Breaker, webhookDeliverJob, type WebhookDeps, webhookPayload } from "./webhook.ts";
export { webhookHeaders } from "./webhook_headers.ts";
export { webhookSigners, type WebhookSigningKeys } from "./webhook_signature.ts";
