/**
 * `queue-worker`: drains the job queue (docs/queue.md) and advances workflow runs
 * (docs/workflows.md). `POST` with a secret API
 * key (the named `cron` key is the documented choice; any `secret:*` works) or
 * a legacy service_role JWT. Body `{"wait"?, "budgetMs"?, "maxJobs"?}`.
 * By default it answers 202 at once and drains in the background
 * (EdgeRuntime.waitUntil); with `"wait": true` it answers 200 with a summary.
 * When the runtime announces the worker's end (`beforeunload`, any reason), the
 * drain stops claiming, acknowledges and fails what finished, and hands back
 * what it holds without spending attempts (docs/queue.md, "Surviving the platform").
 * Event subscriptions and projections (docs/events.md) are driven in the same
 * budget, beside the jobs; their counts are the summary's `events`.
 */
import { z } from "npm:zod@4";
import {
  type ConsumerDefinition,
  type FunctionSpec,
  type HandlerContext,
  type JobDefinition,
  jobRegistry,
  onBeforeUnload,
  otlpExporter,
  QUEUE_NAME,
  route,
  runSubscriptions,
  runWorker,
  type Sql,
  WorkerUnloadError,
  type WorkflowDefinition,
  workflowRunJob,
} from "../_shared/mod.ts";

/** Options of {@link queueWorkerSpec}. */
export interface QueueWorkerOptions {
  jobs: JobDefinition[];
  /**
   * Workflows whose runs this worker advances (as `workflow.run` jobs); a function
   * when they need the database (it gets the worker's connection).
   */
  workflows?: WorkflowDefinition[] | ((sql: Sql) => WorkflowDefinition[]);
  /** Event subscriptions and projections to drive (see docs/events.md). */
  subscriptions?: ConsumerDefinition[];
  queue?: string;
  concurrency?: number;
}

/** Free plan: 150 s wall clock per worker; leave room for the last jobs and the response. */
export const DEFAULT_BUDGET_MS = 50_000;
/** The budgets the endpoint accepts; every one of them makes progress on runnable jobs. */
export const BUDGET_RANGE_MS = { min: 1_000, max: 140_000 } as const;

const body = z.object({
  wait: z.boolean().default(false),
  budgetMs: z.number().int().min(BUDGET_RANGE_MS.min).max(BUDGET_RANGE_MS.max)
    .default(DEFAULT_BUDGET_MS),
  maxJobs: z.number().int().min(1).max(1_000_000).optional(),
  queue: z.string().regex(QUEUE_NAME).optional(),
}).strict();

/** Builds the function spec around a set of job types. */
export function queueWorkerSpec(options: QueueWorkerOptions): FunctionSpec {
  const registry = jobRegistry(options.jobs);
  const subscriptions = options.subscriptions ?? [];
  const drain = async (ctx: HandlerContext, input: z.output<typeof body>) => {
    const sql = await ctx.db.sql();
    const log = ctx.log.child({ requestId: ctx.requestId });
    const wf = options.workflows;
    const workflows = typeof wf === "function" ? wf(sql) : wf ?? [];
    const unload = new AbortController();
    const unsubscribe = onBeforeUnload((reason) => {
      ctx.log.warn("worker ending, handing jobs back", { requestId: ctx.requestId, reason });
      unload.abort(new WorkerUnloadError(reason));
    });
    const spans = ctx.env.otlpEndpoint
      ? otlpExporter(ctx.env.otlpEndpoint, "queue-worker", ctx.log)
      : undefined;
    const events = subscriptions.length === 0 ? null : runSubscriptions({
      sql,
      subscriptions,
      budgetMs: input.budgetMs,
      signal: unload.signal,
      spans,
      log,
    });
    // Either loop failing must not leave the other's promise unobserved.
    events?.catch(() => {});
    const summary = await runWorker({
      sql,
      registry: workflows.length === 0
        ? registry
        : jobRegistry([...options.jobs, workflowRunJob({ sql, workflows, log })]),
      queue: input.queue ?? options.queue,
      concurrency: options.concurrency ?? 10,
      budgetMs: input.budgetMs,
      maxJobs: input.maxJobs,
      signal: unload.signal,
      spans,
      log,
    }).finally(unsubscribe);
    // stoppedBy / notStarted / cutOff say why runnable jobs were left or handed back.
    ctx.log.info("queue drained", { requestId: ctx.requestId, ...summary });
    const eventSummary = await events;
    if (eventSummary) ctx.log.info("events drained", { requestId: ctx.requestId, ...eventSummary });
    return {
      claimed: summary.claimed,
      completed: summary.completed,
      retried: summary.retried,
      deadLettered: summary.deadLettered,
      deferred: summary.deferred,
      released: summary.released,
      notStarted: summary.notStarted,
      cutOff: summary.cutOff,
      stoppedBy: summary.stoppedBy,
      durationMs: summary.durationMs,
      ...(eventSummary ? { events: eventSummary } : {}),
    };
  };
  return {
    name: "queue-worker",
    auth: ["secret:*"],
    routes: [
      route({
        method: "POST",
        path: "/",
        input: body,
        handler: async (ctx) => {
          if (ctx.input.wait) return await drain(ctx, ctx.input);
          ctx.waitUntil(drain(ctx, ctx.input));
          return new Response(JSON.stringify({ data: { accepted: true } }), {
            status: 202,
            headers: { "content-type": "application/json" },
          });
        },
      }),
    ],
  };
}
