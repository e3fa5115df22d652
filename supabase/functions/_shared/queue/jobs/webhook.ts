/**
 * The shipped `webhook.deliver` job: `{"url", "method"?, "headers"?, "body"?}`.
 * 2xx: done. 5xx, 429, timeouts and network errors: retried with backoff and
 * counted by the target host's circuit breaker; a name that does not resolve
 * (yet) is retried too. Other 4xx and 3xx (redirects are not followed: they
 * could point inside): dead-lettered. Private targets: refused (`ssrf_blocked`).
 * Headers that cannot or must not be sent fail the schema (`invalid_payload`).
 * A job enqueued with a trace sends its run's `traceparent` (and `tracestate`).
 */
import { z } from "npm:zod@4";
import type { Clock } from "../../core/time.ts";
import { injectTrace } from "../../core/trace.ts";
import { BreakerRegistry } from "../../resilience/breaker/registry.ts";
import { CircuitOpenError } from "../../resilience/breaker/errors.ts";
import { DeferJobError, PermanentJobError } from "../errors.ts";
import { defineJob, type JobDefinition } from "../job.ts";
import { WEBHOOK_RETRY_SCHEDULE_MS } from "../retry_policy.ts";
import { assertPublicUrl, type SsrfOptions } from "./ssrf.ts";
import { webhookHeaders } from "./webhook_headers.ts";
import { signWebhook, webhookSigners, type WebhookSigningKeys } from "./webhook_signature.ts";

/** Payload of `webhook.deliver`. */
export const webhookPayload = z.object({
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(["POST", "PUT", "PATCH", "DELETE", "GET"]).default("POST"),
  headers: webhookHeaders.default({}),
  body: z.unknown().optional(),
  /** Sign with this named key (Standard Webhooks) at send time; needs a `webhook-id` header. */
  signWith: z.string().min(1).max(128).optional(),
});

/** A retryable delivery failure (5xx, 429). */
class WebhookHttpError extends Error {
  constructor(readonly status: number) {
    super(`webhook answered ${status}`);
    this.name = "WebhookHttpError";
  }
}

/** What delivery needs from a breaker (the shared `CircuitBreaker` is one). */
export interface Breaker {
  execute<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

/**
 * Hosts' breakers of one job definition (queue-worker builds one per isolate):
 * bounded (webhook targets are arbitrary), so a flood of distinct hosts cannot
 * grow memory without limit.
 */
function hostBreakers(now: Clock): BreakerRegistry {
  return new BreakerRegistry({
    maxSize: 500,
    defaults: {
      policies: [{ kind: "consecutive", failures: 5 }],
      openMs: 30_000,
      timeoutMs: 30_000,
    },
  }, { now });
}

/** Dependencies of {@link webhookDeliverJob}. */
export interface WebhookDeps extends SsrfOptions {
  fetch?: typeof fetch;
  /** Breaker for a host; default: the shared circuit breaker, one per host (5 failures, 30 s). */
  breakerFor?: (host: string) => Breaker;
  timeoutMs?: number;
  /** Clock of the default breakers and of signatures (default: Date.now). */
  now?: Clock;
  /** Named Standard Webhooks secrets for payloads with `signWith` (event webhook subscriptions). */
  signingKeys?: WebhookSigningKeys;
}

/**
 * A refusal by an open breaker is not a try: the job waits until the breaker may
 * let a probe through, without spending an attempt (a short outage must not
 * dead-letter deliveries through instant refusals).
 */
function deferIfOpen(error: unknown): never {
  if (error instanceof CircuitOpenError) {
    throw new DeferJobError(error.retryAfterMs, error.message, { cause: error });
  }
  throw error;
}

/** Builds the `webhook.deliver` job definition. */
export function webhookDeliverJob(deps: WebhookDeps = {}): JobDefinition {
  const doFetch = deps.fetch ?? globalThis.fetch.bind(globalThis);
  const breakers = deps.breakerFor ? null : hostBreakers(deps.now ?? Date.now);
  const breakerFor = deps.breakerFor ?? ((host: string) => breakers!.get(host));
  const signers = webhookSigners(deps.signingKeys ?? {});
  const now = deps.now ?? Date.now;
  return defineJob({
    type: "webhook.deliver",
    schema: webhookPayload,
    timeoutMs: deps.timeoutMs ?? 15_000,
    maxAttempts: 8,
    backoff: { scheduleMs: WEBHOOK_RETRY_SCHEDULE_MS },
    handler: async (p, { signal, trace }) => {
      const url = new URL(p.url);
      await assertPublicUrl(url, deps, signal);
      const headers = new Headers(p.headers);
      // The receiver continues the trace of whoever enqueued the delivery. An
      // untraced delivery sends nothing of ours: a fresh id would lead nowhere.
      if (trace.parentSpanId !== undefined) injectTrace(headers, trace);
      let body: string | undefined;
      if (p.body !== undefined && p.method !== "GET") {
        body = typeof p.body === "string" ? p.body : JSON.stringify(p.body);
        if (!headers.has("content-type") && typeof p.body !== "string") {
          headers.set("content-type", "application/json");
        }
      }
      if (p.signWith !== undefined) {
        const signer = signers.get(p.signWith);
        if (!signer || !headers.has("webhook-id")) {
          throw new PermanentJobError(
            signer
              ? "a signed webhook needs a webhook-id header"
              : `no signing key "${p.signWith}"`,
            { reason: "unsigned" },
          );
        }
        signWebhook(signer, headers, body ?? "", new Date(now()));
      }
      const res = await breakerFor(url.host).execute(async (callSignal) => {
        const r = await doFetch(url, {
          method: p.method,
          headers,
          body,
          // The job's timeout and the breaker's call budget, whichever ends first.
          signal: AbortSignal.any([signal, callSignal]),
          redirect: "manual",
        });
        if (r.status >= 500 || r.status === 429) {
          await r.body?.cancel();
          throw new WebhookHttpError(r.status);
        }
        return r;
      }).catch(deferIfOpen);
      await res.body?.cancel();
      if (res.status >= 200 && res.status < 300) return;
      throw new PermanentJobError(`webhook answered ${res.status}`, {
        reason: `http_${res.status}`,
      });
    },
  });
}
