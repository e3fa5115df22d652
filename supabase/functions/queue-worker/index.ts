/** Deploy entry point of `queue-worker` (see spec.ts). */
import { defineFunction, readEnv } from "../_shared/mod.ts";
import { jobDefinitions } from "./jobs.ts";
import { queueWorkerSpec } from "./spec.ts";
import { subscriptionDefinitions } from "./subscriptions.ts";

// A bad environment is reported by defineFunction (500s with a logged reason);
// here it only means no private webhook targets are allowed.
const allowHosts = (() => {
  try {
    return readEnv().webhookAllowHosts;
  } catch {
    return [];
  }
})();

export default defineFunction(
  queueWorkerSpec({
    jobs: jobDefinitions({ allowHosts }),
    subscriptions: subscriptionDefinitions(),
  }),
);
