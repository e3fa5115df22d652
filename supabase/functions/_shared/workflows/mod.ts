/** `workflows`: durable workflows and sagas on the queue (docs/workflows.md). */
export {
  defineWorkflow,
  STEP_DEFAULTS,
  type StepOptions,
  type StepRunContext,
  type WorkflowContext,
  type WorkflowDefinition,
  type WorkflowRegistry,
  workflowRegistry,
} from "./definition.ts";
export {
  NonDeterminismError,
  StepFailedError,
  StepResultError,
  StepTimeoutError,
  WaitTimeoutError,
  WorkflowCancelledError,
  WorkflowInputError,
} from "./errors.ts";
export { CANCEL_POLL_MS } from "./cancel_watch.ts";
export { MAX_RESULT_BYTES } from "./json_result.ts";
export { WORKFLOW_JOB_TYPE, workflowRunJob, type WorkflowRunJobOptions } from "./run_job.ts";
export {
  cancelWorkflow,
  retryWorkflow,
  signalWorkflow,
  type StartOptions,
  startWorkflow,
  type WorkflowStatus,
  workflowStatus,
} from "./start.ts";
export {
  ORDER_CHECKOUT,
  type OrderCheckoutDeps,
  orderCheckoutInput,
  orderCheckoutStart,
  orderCheckoutWorkflow,
} from "./examples/order_checkout.ts";
