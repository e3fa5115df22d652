/** Deploy entry point of `queue-worker` (see spec.ts). */
import { defineFunction } from "../_shared/mod.ts";
import { jobDefinitions } from "./jobs.ts";
import { queueWorkerSpec } from "./spec.ts";

export default defineFunction(queueWorkerSpec({ jobs: jobDefinitions() }));
