/**
 * Webhook subscriptions: each matching event becomes one `webhook.deliver` job
 * (retries for a day, a breaker per host, the SSRF rules), enqueued in the
 * transaction that acknowledges the event, so each event is enqueued exactly
 * once. The job is signed per Standard Webhooks when it is sent (`signWith`:
 * the name of a key in the worker's `signingKeys`); `webhook-id` is stable per
 * subscription and event, so receivers can drop redeliveries. A traced event's
 * delivery continues its trace (the receiver gets a `traceparent`).
 *
 * The secrets stay out of the repository and out of Postgres: signing key `crm`
 * is read from the environment variable `EVENTS_WEBHOOK_SECRET_CRM`
 * ({@link webhookSigningKeys}; `supabase secrets set` on hosted projects).
 *
 * @example
 * const crm = defineWebhookSubscription({
 *   name: "crm-notes", filter: { streamPrefix: "notes-" },
 *   url: "https://crm.example.com/hooks/notes", signingKey: "crm",
 * });
 * const jobs = [webhookDeliverJob({ signingKeys: webhookSigningKeys([crm]) })];
 */
import { readWebhookSigningKeys } from "../core/env.ts";
import { enqueue } from "../queue/enqueue.ts";
import { webhookDeliverJob } from "../queue/jobs/webhook.ts";
import {
  type ConsumerDefinition,
  defineProjection,
  type EventFilter,
  type ProjectionDefinition,
} from "./subscription.ts";

export { readWebhookSigningKeys, webhookSecretVariable } from "../core/env.ts";

/** Options of {@link defineWebhookSubscription}. */
export interface WebhookSubscriptionOptions {
  name: string;
  filter?: EventFilter;
  startAt?: "beginning" | "now";
  /** Where events go (https; private targets need the worker's allowHosts). */
  url: string;
  /**
   * Name of the signing key in the queue-worker's `signingKeys`; its secret is the
   * environment variable `EVENTS_WEBHOOK_SECRET_<KEY>` (see {@link webhookSigningKeys}).
   */
  signingKey: string;
}

/** A webhook subscription: a projection that enqueues signed deliveries, and where they go. */
export interface WebhookSubscriptionDefinition extends ProjectionDefinition {
  readonly url: string;
  readonly signingKey: string;
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
): WebhookSubscriptionDefinition {
  if (
    typeof options.signingKey !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(options.signingKey)
  ) {
    throw new TypeError(`${options.name}: signingKey must match [A-Za-z0-9_.:-]{1,128}`);
  }
  // Only its type and schema are used: the payload is checked here, at enqueue.
  const job = webhookDeliverJob();
  const def = defineProjection({
    name: options.name,
    filter: options.filter,
    startAt: options.startAt,
    apply: async (tx, event, ctx) => {
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
        // An untraced event's delivery sends no trace of ours: a fresh id would lead nowhere.
      }, ctx.trace.parentSpanId === undefined ? {} : { trace: ctx.trace });
    },
  });
  return { ...def, url: options.url, signingKey: options.signingKey };
}

/**
 * The signing secrets the webhook subscriptions among `subscriptions` name, read
 * from the environment (`EVENTS_WEBHOOK_SECRET_<KEY>`): hand them to
 * `webhookDeliverJob({ signingKeys })`. Throws EnvError naming each variable that
 * is unset or not a Standard Webhooks secret (`whsec_` + base64 of 24..64 bytes).
 */
export function webhookSigningKeys(
  subscriptions: readonly ConsumerDefinition[],
  get?: (name: string) => string | undefined,
): Record<string, string> {
  const keys = subscriptions.flatMap((d) => {
    const key = (d as Partial<WebhookSubscriptionDefinition>).signingKey;
    return typeof key === "string" ? [key] : [];
  });
  return readWebhookSigningKeys(keys, get);
}
