/** `queue`: job definitions, enqueueing, the worker, and the shipped job types. */
export {
  enqueue,
  type EnqueueItem,
  enqueueMany,
  type EnqueueManyOptions,
  type EnqueueOptions,
  jobRow,
  MAX_PAYLOAD_BYTES,
  type Queryable,
} from "./enqueue.ts";
export {
  DeferJobError,
  JobPayloadError,
  JobTimeoutError,
  PayloadTooLargeError,
  PermanentJobError,
  QueueOptionsError,
  WorkerBudgetError,
  WorkerUnloadError,
} from "./errors.ts";
export {
  type BackoffPolicy,
  defineJob,
  JOB_DEFAULTS,
  type JobContext,
  type JobDefinition,
  type JobRegistry,
  jobRegistry,
  QUEUE_NAME,
} from "./job.ts";
export { effectiveMaxAttempts, retryWindow, WEBHOOK_RETRY_SCHEDULE_MS } from "./retry_policy.ts";
export { type ClaimedJob, type JobOutcome, runJob } from "./run_job.ts";
export { leaseMsFor } from "./lease.ts";
export {
  BATCH_WORK_MS,
  MAX_BATCH_SIZE,
  nextBatchSize,
  runWorker,
  SPLIT_CLAIM_AT,
  type StopReason,
  type WorkerOptions,
  type WorkerSummary,
} from "./worker.ts";
export * from "./jobs/mod.ts";
