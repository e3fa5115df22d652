/**
 * Standard Webhooks signatures for `webhook.deliver` (https://www.standardwebhooks.com),
 * made with `npm:standardwebhooks`, never by hand. A delivery is signed when it is
 * sent, not when it is enqueued: receivers refuse timestamps older than a few
 * minutes, and retries go on for a day. Secrets stay in the worker's
 * configuration; a job names its key (`signWith`), so no secret is stored in Postgres.
 */
import { Webhook } from "npm:standardwebhooks@1";

/** Signing keys by name: Standard Webhooks secrets (`whsec_` + base64 of 24..64 random bytes). */
export type WebhookSigningKeys = Readonly<Record<string, string>>;

/** A named key's signer; checks every secret once, so a bad one fails at start, not per job. */
export function webhookSigners(keys: WebhookSigningKeys): Map<string, Webhook> {
  const signers = new Map<string, Webhook>();
  for (const [name, secret] of Object.entries(keys)) {
    const raw = typeof secret === "string" ? secret.replace(/^whsec_/, "") : "";
    let bytes = 0;
    try {
      bytes = atob(raw).length;
    } catch { /* reported below */ }
    if (bytes < 24 || bytes > 64) {
      throw new TypeError(
        `webhook signing key "${name}" must be whsec_ + base64 of 24..64 bytes`,
      );
    }
    signers.set(name, new Webhook(secret));
  }
  return signers;
}

/** Sets `webhook-timestamp` and `webhook-signature` for `body`, signed at `at`. */
export function signWebhook(signer: Webhook, headers: Headers, body: string, at: Date): void {
  const id = headers.get("webhook-id")!;
  headers.set("webhook-timestamp", String(Math.floor(at.getTime() / 1000)));
  headers.set("webhook-signature", signer.sign(id, at, body));
}
