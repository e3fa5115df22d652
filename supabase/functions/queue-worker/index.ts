/** Deploy entry point of `queue-worker` (see spec.ts). */
import { defineFunction, orderCheckoutWorkflow, readEnv } from "../_shared/mod.ts";
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

export default defineFunction(queueWorkerSpec({
  jobs: jobDefinitions({ allowHosts }),
  // The order.checkout example saga runs where its payment partner is configured.
  workflows: (sql) => paymentUrl ? [orderCheckoutWorkflow({ sql, paymentUrl })] : [],
  subscriptions: subscriptionDefinitions(),
}));
