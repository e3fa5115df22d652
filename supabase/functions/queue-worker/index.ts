/** Deploy entry point of `queue-worker` (see spec.ts). */
import {
  defineFunction,
  orderCheckoutWorkflow,
  readEnv,
  webhookSigningKeys,
} from "../_shared/mod.ts";
import { jobDefinitions } from "./jobs.ts";
import { queueWorkerSpec } from "./spec.ts";
import { subscriptionDefinitions } from "./subscriptions.ts";

// A bad environment is reported by defineFunction (500s with a logged reason);
// here it only means no private webhook targets are allowed and no example saga.
const env = (() => {
  try {
    return readEnv();
  } catch {
    return null;
  }
})();
const allowHosts = env?.webhookAllowHosts ?? [];
const paymentUrl = env?.checkoutPaymentUrl ?? null;
const subscriptions = subscriptionDefinitions();
// Webhook subscriptions sign with EVENTS_WEBHOOK_SECRET_<KEY>. A missing or bad
// secret is logged here (naming the variable, never the value) and that
// subscription's deliveries dead-letter as unsigned until it is set: nothing is
// sent unsigned, and the other jobs keep running.
const signingKeys = (() => {
  try {
    return webhookSigningKeys(subscriptions);
  } catch (error) {
    console.error(JSON.stringify({
      level: "error",
      msg: "webhook signing secret unusable",
      error: error instanceof Error ? error.message : String(error),
    }));
    return {};
  }
})();

export default defineFunction(queueWorkerSpec({
  jobs: jobDefinitions({ allowHosts, signingKeys }),
  // The order.checkout example saga runs where its payment partner is configured.
  workflows: (sql) => paymentUrl ? [orderCheckoutWorkflow({ sql, paymentUrl })] : [],
  subscriptions,
}));
