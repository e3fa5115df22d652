/**
 * Workflow definitions: a name, a zod schema for the input and the run function.
 *
 * @example
 * const greet = defineWorkflow({
 *   name: "user.greet",
 *   input: z.object({ userId: z.string() }),
 *   run: async ({ userId }, ctx) => {
 *     const user = await ctx.step("load", () => loadUser(userId));
 *     await ctx.sleep("pause", 60_000);
 *     return await ctx.step("send", ({ idempotencyKey }) => mail(user, idempotencyKey));
 *   },
 * });
 */
import type { z } from "npm:zod@4";
import type { Logger } from "../core/log.ts";
import type { BackoffPolicy } from "../queue/job.ts";

/** What a step function receives. */
export interface StepRunContext {
  /**
   * Aborted at the step's timeout, when the worker must stop, and when the run is
   * cancelled while the step runs (reason: a `WorkflowCancelledError`). Pass it to
   * fetch and friends; a step that ignores it runs to its end.
   */
  signal: AbortSignal;
  /** `<run id>:<step name>`: the same on every attempt; send it to partners. */
  idempotencyKey: string;
  /** 1 on the first attempt. */
  attempt: number;
}

/** Options of one step. */
export interface StepOptions<T> {
  /** Undoes the completed step when the run fails or is cancelled (sagas). */
  compensate?: (result: T) => Promise<unknown> | unknown;
  /** Attempts of the step, and of its compensation (default 3). */
  maxAttempts?: number;
  /** Per attempt (default 30 s). */
  timeoutMs?: number;
  /** Delay between attempts (default 1 s doubling to 30 s, full jitter). */
  backoff?: BackoffPolicy;
}

/** What a run function receives besides its input. */
export interface WorkflowContext {
  readonly runId: number;
  readonly log: Logger;
  /** Runs `fn` once (memoized): on replay the stored JSON result is returned. */
  step<T>(
    name: string,
    fn: (ctx: StepRunContext) => Promise<T> | T,
    options?: StepOptions<T>,
  ): Promise<T>;
  /** Suspends the run durably for `ms`. */
  sleep(name: string, ms: number): Promise<void>;
  /**
   * Waits for `workflows.signal(run, event, payload)` (event defaults to `name`) and
   * returns its payload; a signal sent earlier is kept. Throws WaitTimeoutError after `timeoutMs`.
   */
  waitForEvent<T = unknown>(
    name: string,
    options?: { timeoutMs?: number; event?: string },
  ): Promise<T>;
}

/** A workflow. Use {@link defineWorkflow} for input type inference. */
export interface WorkflowDefinition<S extends z.ZodType = z.ZodType, O = unknown> {
  name: string;
  input: S;
  run(input: z.output<S>, ctx: WorkflowContext): Promise<O>;
}

/** Defaults where a step is silent. */
export const STEP_DEFAULTS = {
  maxAttempts: 3,
  timeoutMs: 30_000,
  backoff: { baseMs: 1_000, maxMs: 30_000 },
} as const;

/** What a workflow name may be (the SQL check on workflows.runs is the same). */
export const WORKFLOW_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Declares a workflow with its input type inferred from the schema. */
export function defineWorkflow<S extends z.ZodType, O>(
  def: WorkflowDefinition<S, O>,
): WorkflowDefinition {
  if (!WORKFLOW_NAME.test(def.name)) {
    throw new TypeError(`workflow name must match ${WORKFLOW_NAME}, got "${def.name}"`);
  }
  return def as unknown as WorkflowDefinition;
}

/** Workflow definitions by name. */
export type WorkflowRegistry = ReadonlyMap<string, WorkflowDefinition>;

/** Builds a registry; a name defined twice is a programming error. */
export function workflowRegistry(defs: readonly WorkflowDefinition[]): WorkflowRegistry {
  const map = new Map<string, WorkflowDefinition>();
  for (const def of defs) {
    if (map.has(def.name)) throw new TypeError(`workflow "${def.name}" is defined twice`);
    map.set(def.name, def);
  }
  return map;
}

/** Checks step options once, at the call (a bad option is a programming error). */
export function checkStepOptions(name: string, o: StepOptions<unknown>): void {
  const max = o.maxAttempts;
  if (max !== undefined && !(Number.isInteger(max) && max >= 1 && max <= 100)) {
    throw new TypeError(`step "${name}": maxAttempts must be an integer in 1..100`);
  }
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0 && Number.isFinite(o.timeoutMs))) {
    throw new TypeError(`step "${name}": timeoutMs must be positive`);
  }
}
