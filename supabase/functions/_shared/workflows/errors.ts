/**
 * Errors of the workflow engine. Workflow code sees {@link StepFailedError} when a
 * step failed for good and {@link WaitTimeoutError} when a wait timed out; both may
 * be caught. A permanent step error is the queue's `PermanentJobError`.
 */
import { LayerError } from "../core/errors.ts";
import type { FieldError } from "../core/json_pointer.ts";

/** A step failed for good (attempts spent, or a permanent error); `error` is its last error. */
export class StepFailedError extends Error {
  constructor(readonly step: string, readonly error: string) {
    super(`step "${step}" failed: ${error}`);
    this.name = "StepFailedError";
  }
}

/** A step ran past its `timeoutMs`; retried like any other failure. */
export class StepTimeoutError extends Error {
  constructor(readonly step: string, readonly timeoutMs: number) {
    super(`step "${step}" timed out after ${timeoutMs} ms`);
    this.name = "StepTimeoutError";
  }
}

/** A step's result is not plain JSON or is too large: permanent (retrying returns the same). */
export class StepResultError extends Error {
  constructor(readonly step: string, detail: string) {
    super(`step "${step}" result ${detail}`);
    this.name = "StepResultError";
  }
}

/** `waitForEvent` reached its timeout with no signal. */
export class WaitTimeoutError extends Error {
  constructor(readonly step: string, readonly event: string) {
    super(`wait "${step}" for event "${event}" timed out`);
    this.name = "WaitTimeoutError";
  }
}

/**
 * The reason a step's `signal` aborts when its run is cancelled
 * (`workflows.cancel`) while the step runs.
 */
export class WorkflowCancelledError extends Error {
  constructor(readonly runId: number) {
    super(`workflow run ${runId} was cancelled`);
    this.name = "WorkflowCancelledError";
  }
}

/**
 * Replay called steps differently from the recorded run (another name at the same
 * position, a step where a sleep was): the run fails, it is not compensated.
 */
export class NonDeterminismError extends Error {
  constructor(readonly step: string, detail: string) {
    super(`non-deterministic replay at step "${step}": ${detail}`);
    this.name = "NonDeterminismError";
  }
}

/** Start input failed the workflow's schema (code `invalid_workflow_input`; a 422). */
export class WorkflowInputError extends LayerError {
  override readonly name = "WorkflowInputError";
  /** The status http/problem.ts answers it with. */
  readonly status = 422;
  constructor(readonly workflow: string, readonly errors: FieldError[]) {
    super(
      "invalid_workflow_input",
      `The input does not match the schema of workflow "${workflow}".`,
    );
  }
}
