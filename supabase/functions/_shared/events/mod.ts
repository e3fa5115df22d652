/**
 * `events`: appending to the event log, subscriptions, projections and webhook
 * subscriptions, and the worker that drives them (docs/events.md).
 */
export {
  appendEvents,
  type AppendOptions,
  type AppendResult,
  MAX_APPEND_BATCH,
  MAX_EVENT_BYTES,
  type NewEvent,
} from "./append.ts";
export { EventHandlerTimeoutError } from "./deliver_stream.ts";
export {
  eventsErrorFrom,
  EventTooLargeError,
  InvalidEventError,
  WrongExpectedVersionError,
} from "./errors.ts";
export {
  runSubscriptions,
  type SubscriptionSummary,
  type SubscriptionWorkerOptions,
} from "./run_subscriptions.ts";
export {
  CONSUMER_DEFAULTS,
  type ConsumerDefinition,
  type ConsumerOptions,
  defineProjection,
  defineSubscription,
  type DeliveryContext,
  type EventFilter,
  type EventRecord,
  type ProjectionDefinition,
  type SubscriptionDefinition,
} from "./subscription.ts";
export {
  defineWebhookSubscription,
  readWebhookSigningKeys,
  type WebhookEventBody,
  webhookSecretVariable,
  webhookSigningKeys,
  type WebhookSubscriptionDefinition,
  type WebhookSubscriptionOptions,
} from "./webhook_subscription.ts";
