/**
 * Webhook subscriptions: each matching event becomes one `webhook.deliver` job
 * (retries for a day, a breaker per host, the SSRF rules), enqueued in the
 * transaction that acknowledges the event, so each event is enqueued exactly
 * once. The job is signed per Standard Webhooks when it is sent (`signWith`:
 * the name of a key in the worker's `signingKeys`); `webhook-id` is stable per
 * subscription and event, so receivers can drop redeliveries.
 *
 * @example
 * const crm = defineWebhookSubscription({
 *   name: "crm-notes", filter: { streamPrefix: "notes-" },
 *   url: "https://crm.example.com/hooks/notes", signingKey: "crm",
 * });
 */
import { enqueue } from "../queue/enqueue.ts";
import { webhookDeliverJob } from "../queue/jobs/webhook.ts";
import { defineProjection, type EventFilter, type ProjectionDefinition } from "./subscription.ts";

/** Options of {@link defineWebhookSubscription}. */
export interface WebhookSubscriptionOptions {
  name: string;
  filter?: EventFilter;
  startAt?: "beginning" | "now";
  /** Where events go (https; private targets need the worker's allowHosts). */
  url: string;
  /** Name of the signing key in the queue-worker's `signingKeys`. */
  signingKey: string;
}

/** The body a receiver gets: Standard Webhooks' `{type, timestamp, data}` plus where the event sits. */
export interface WebhookEventBody {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
  stream: string;
  version: number;
  position: string;
}

/** Defines a subscription that delivers each event to `url` through `webhook.deliver`, signed. */
export function defineWebhookSubscription(
  options: WebhookSubscriptionOptions,
): ProjectionDefinition {
  // Only its type and schema are used: the payload is checked here, at enqueue.
  const job = webhookDeliverJob();
  return defineProjection({
    name: options.name,
    filter: options.filter,
    startAt: options.startAt,
    apply: async (tx, event) => {
      const body: WebhookEventBody = {
        type: event.type,
        timestamp: event.createdAt.toISOString(),
        data: event.data,
        stream: event.stream,
        version: event.version,
        position: event.position,
      };
      await enqueue(tx, job, {
        url: options.url,
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": `evt_${options.name}_${event.position}`,
        },
        body: JSON.stringify(body),
        signWith: options.signingKey,
      });
    },
  });
}
