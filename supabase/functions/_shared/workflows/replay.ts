/**
 * One invocation's replay of a run: the `ctx` a run function receives. Steps with
 * a stored result return it without running; the first step without one runs
 * (its result recorded under the fence). A step that must wait (a retry's
 * backoff, a sleep, a wait for a signal) records why and *suspends*: its promise
 * never settles, the invocation ends once nothing is in flight, and a later
 * invocation replays from the start. A never-settling promise, rather than a
 * thrown marker, cannot be swallowed by the workflow's own try/catch.
 */
import type { Sql } from "npm:postgres@3";
import type { Logger } from "../core/log.ts";
import {
  checkStepOptions,
  STEP_DEFAULTS,
  type StepOptions,
  type StepRunContext,
  type WorkflowContext,
} from "./definition.ts";
import { type AttemptSignals, nextTryAtMs, runAttempt } from "./attempt.ts";
import { CallOrder } from "./call_order.ts";
import { StepFailedError, WaitTimeoutError } from "./errors.ts";
import { type Fence, recordStep, type RunState, type StepRow, type StepWrite } from "./sql.ts";

/** A completed step's undo, as the replay registered it. */
export interface Registration {
  compensate: (result: unknown) => unknown;
  options: StepOptions<unknown>;
}

/** Why the run stopped advancing in this invocation. */
export interface Suspension {
  status: "pending" | "sleeping" | "waiting";
  /** Null: no time limit (a wait without timeout). */
  wakeAtMs: number | null;
  events: string[];
}

/** How the run function ended, or that it was halted. */
export type DriveEnd =
  | { kind: "returned"; value: unknown }
  | { kind: "threw"; error: unknown }
  | { kind: "halted" };

/** Thrown to steps not yet completed while a run is being compensated. */
export class RunEndingError extends Error {
  constructor() {
    super("the run is being compensated: no new steps run");
    this.name = "RunEndingError";
  }
}

type Attempt = { value: unknown } | { error: unknown } | "hang";

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** Dependencies of one replay. */
export interface ReplayDeps {
  sql: Sql;
  fence: Fence;
  state: RunState;
  mode: "forward" | "compensate";
  /** Aborts when the worker must stop (budget, shutdown, job timeout). */
  stop: AbortSignal;
  /** Aborts when the run is cancelled while this invocation replays it (see cancel_watch.ts). */
  cancelled?: AbortSignal;
  log: Logger;
}

/** The context of one invocation (see the module doc). */
export class Replay implements WorkflowContext {
  readonly runId: number;
  readonly log: Logger;
  readonly compensations = new Map<string, Registration>();
  readonly steps = new Map<string, StepRow>();
  suspension: Suspension | null = null;
  /** Set when a write found the lease gone or the run cancelled, or could not be made. */
  halt: "lease_lost" | "cancelled" | "write_failed" | null = null;
  /** Why a write failed (a database error): the invocation is retried, never the step. */
  writeError: unknown = undefined;
  /** Non-determinism or misuse: the run fails without compensation. */
  fatal: Error | null = null;
  readonly #deps: ReplayDeps;
  readonly #order: CallOrder;
  readonly #signals: AttemptSignals;
  readonly #taken = new Set<number>();
  readonly #clockBase: number;
  #inflight = 0;
  #closed = false;
  #onQuiet: (() => void)[] = [];

  constructor(deps: ReplayDeps) {
    this.#deps = deps;
    this.runId = deps.fence.runId;
    this.log = deps.log;
    for (const row of deps.state.steps) this.steps.set(row.name, row);
    this.#order = new CallOrder(deps.state.steps, this.steps);
    const cancelled = deps.cancelled ?? new AbortController().signal;
    this.#signals = {
      stop: deps.stop,
      cancelled,
      either: deps.cancelled ? AbortSignal.any([deps.stop, cancelled]) : deps.stop,
    };
    // A cancel stops new steps at once; running ones see their signal abort.
    cancelled.addEventListener("abort", () => {
      this.halt ??= "cancelled";
      this.#quiet();
    }, { once: true });
    // Time is Postgres' clock (sleeps and timeouts are stored in it) plus what has passed here.
    this.#clockBase = deps.state.nowMs - performance.now();
  }

  /** Milliseconds on the database's clock. */
  now(): number {
    return this.#clockBase + performance.now();
  }

  /** Runs the workflow function until it ends, or until it halts with nothing in flight. */
  async drive(run: () => Promise<unknown>): Promise<DriveEnd> {
    const ended = (async () => await run())().then(
      (value): DriveEnd => ({ kind: "returned", value }),
      (error): DriveEnd => ({ kind: "threw", error }),
    );
    const halted = new Promise<DriveEnd>((resolve) => {
      const onStop = () => resolve({ kind: "halted" });
      this.#deps.stop.addEventListener("abort", onStop, { once: true });
      const check = () => {
        if (this.#halted && this.#inflight === 0) resolve({ kind: "halted" });
        else this.#onQuiet.push(check);
      };
      check();
    });
    const end = await Promise.race([ended, halted]);
    // Nothing new starts from here; steps still running are waited for, so their
    // results are recorded before the run moves on.
    this.#closed = true;
    await this.idle();
    return end;
  }

  /** Resolves when no step is running. */
  idle(): Promise<void> {
    if (this.#inflight === 0 || this.#deps.stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.#inflight === 0 || this.#deps.stop.aborted) resolve();
        else this.#onQuiet.push(check);
      };
      this.#onQuiet.push(check);
    });
  }

  async step<T>(
    name: string,
    fn: (ctx: StepRunContext) => Promise<T> | T,
    options: StepOptions<T> = {},
  ): Promise<T> {
    const { seq, row } = this.#enter(name, "step");
    checkStepOptions(name, options as StepOptions<unknown>);
    if (options.compensate) {
      this.compensations.set(name, {
        compensate: options.compensate as (r: unknown) => unknown,
        options: options as StepOptions<unknown>,
      });
    }
    if (row?.status === "completed") return row.result as T;
    if (row?.status === "failed") throw new StepFailedError(name, row.error ?? "failed");
    if (this.#deps.mode === "compensate") throw new RunEndingError();
    if (this.#halted || this.#closed) return never();
    if (row?.status === "retrying" && row.wakeAtMs !== null && row.wakeAtMs > this.now()) {
      this.#suspend("pending", row.wakeAtMs);
      return never();
    }
    const attempt = (row?.attempts ?? 0) + 1;
    const out = await this.#track(() => this.#attempt(name, seq, fn, options, attempt));
    if (out === "hang") return never();
    if ("error" in out) throw out.error;
    return out.value as T;
  }

  async sleep(name: string, ms: number): Promise<void> {
    if (typeof ms !== "number" || !(ms >= 0) || !Number.isFinite(ms)) {
      throw this.#misuse(new TypeError(`sleep "${name}": ms must be a finite number >= 0`));
    }
    const { seq, row } = this.#enter(name, "sleep");
    if (row?.status === "completed") return;
    if (this.#deps.mode === "compensate") throw new RunEndingError();
    if (this.#halted || this.#closed) return never();
    const wakeAtMs = row?.wakeAtMs ?? this.now() + ms;
    const base = { name, seq, kind: "sleep" as const, attempts: 1 };
    if (wakeAtMs <= this.now()) {
      const out = await this.#track(() => this.#write({ ...base, status: "completed" }));
      if (out === "hang") return never();
      return;
    }
    if (!row) {
      const out = await this.#track(() => this.#write({ ...base, status: "sleeping", wakeAtMs }));
      if (out === "hang") return never();
    }
    this.#suspend("sleeping", wakeAtMs);
    return never();
  }

  async waitForEvent<T = unknown>(
    name: string,
    options: { timeoutMs?: number; event?: string } = {},
  ): Promise<T> {
    const event = options.event ?? name;
    if (typeof event !== "string" || event.length < 1 || event.length > 200) {
      throw this.#misuse(
        new TypeError(`wait "${name}": event must be a string of 1..200 characters`),
      );
    }
    const t = options.timeoutMs;
    if (t !== undefined && !(typeof t === "number" && t >= 0 && Number.isFinite(t))) {
      throw this.#misuse(new TypeError(`wait "${name}": timeoutMs must be a finite number >= 0`));
    }
    const { seq, row } = this.#enter(name, "wait");
    if (row?.status === "completed") return row.result as T;
    if (row?.status === "timed_out") throw new WaitTimeoutError(name, event);
    if (this.#deps.mode === "compensate") throw new RunEndingError();
    if (this.halt !== null || this.fatal !== null || this.#deps.stop.aborted || this.#closed) {
      return never();
    }
    // A wait called after another call suspended this invocation (parallel waits, a
    // wait beside a sleep or a backoff) still takes a signal that is there, and still
    // records that it waits (so its event wakes the run), but returns nothing now:
    // the replay that resumes the run reads what was recorded. Its time-out is left
    // to the replay in which it is the first to suspend.
    const behind = this.suspension;
    const base = { name, seq, kind: "wait" as const, attempts: 1, event };
    const signal = this.#deps.state.signals.find((s) =>
      s.event === event && !this.#taken.has(s.id)
    );
    if (signal) {
      this.#taken.add(signal.id);
      const write = { ...base, status: "completed" as const, result: signal.payload };
      const out = await this.#track(() => this.#write({ ...write, signalId: signal.id }));
      if (out === "hang" || behind) return never();
      return signal.payload as T;
    }
    // Before any write: the invocation may end while it is in flight.
    behind?.events.push(event);
    const wakeAtMs = row ? row.wakeAtMs : t === undefined ? null : this.now() + t;
    if (wakeAtMs !== null && wakeAtMs <= this.now()) {
      if (behind) return never();
      const out = await this.#track(() => this.#write({ ...base, status: "timed_out", wakeAtMs }));
      if (out === "hang") return never();
      throw new WaitTimeoutError(name, event);
    }
    if (!row) {
      const out = await this.#track(() => this.#write({ ...base, status: "waiting", wakeAtMs }));
      if (out === "hang" || behind) return never();
    }
    if (!behind) this.#suspend("waiting", wakeAtMs, event);
    return never();
  }

  get #halted(): boolean {
    return this.suspension !== null || this.halt !== null || this.fatal !== null ||
      this.#deps.stop.aborted;
  }

  /** Checks a call against the recorded run (call_order.ts); a mismatch is fatal. */
  #enter(name: string, kind: StepRow["kind"]): { seq: number; row: StepRow | undefined } {
    try {
      return this.#order.enter(name, kind);
    } catch (error) {
      throw this.#misuse(error as Error);
    }
  }

  #misuse(error: Error): Error {
    this.fatal ??= error;
    this.#quiet();
    return error;
  }

  /** Runs one attempt (attempt.ts) and records its outcome under the fence. */
  async #attempt<T>(
    name: string,
    seq: number,
    fn: (ctx: StepRunContext) => Promise<T> | T,
    options: StepOptions<T>,
    attempt: number,
  ): Promise<Attempt> {
    const out = await runAttempt(this.runId, name, fn, options, attempt, this.#signals);
    // The worker must stop: record nothing, the job goes back and a replay runs it again.
    if (out.kind === "stopped") return "hang";
    const base = { name, seq, kind: "step" as const, attempts: attempt };
    if (out.kind === "completed") {
      const write = { ...base, status: "completed" as const, result: out.value };
      const w = await this.#write({ ...write, hasCompensation: !!options.compensate });
      return w === "hang" ? "hang" : { value: out.value };
    }
    if (out.kind === "cancelled") {
      // Recorded for the history; the run halts (the write answers "cancelled") and compensates.
      this.log.info("workflow step aborted by cancel", { step: name, attempt });
      await this.#write({ ...base, status: "failed", error: out.error });
      this.halt ??= "cancelled";
      return "hang";
    }
    const { error, permanent } = out;
    const max = options.maxAttempts ?? STEP_DEFAULTS.maxAttempts;
    this.log.warn("workflow step failed", { step: name, attempt, permanent, error });
    if (permanent || attempt >= max) {
      const w = await this.#write({ ...base, status: "failed", error });
      return w === "hang" ? "hang" : { error: new StepFailedError(name, error) };
    }
    const wakeAtMs = nextTryAtMs(options as StepOptions<unknown>, attempt, this.now());
    const w = await this.#write({ ...base, status: "retrying", error, wakeAtMs });
    if (w !== "hang") this.#suspend("pending", wakeAtMs);
    return "hang";
  }

  /** Records a step; on a lost lease or a cancel the run halts ("hang"). */
  async #write(w: StepWrite): Promise<"ok" | "hang"> {
    let answer: Awaited<ReturnType<typeof recordStep>>;
    try {
      answer = await recordStep(this.#deps.sql, this.#deps.fence, w);
    } catch (error) {
      // Not the step's failure: the workflow must not see it (nor compensate for it).
      // It wins over a cancel: the invocation is retried rather than compensating
      // around a step whose result was never recorded.
      this.writeError ??= error;
      if (this.halt !== "lease_lost") this.halt = "write_failed";
      return "hang";
    }
    if (answer === "lease_lost") {
      this.halt = "lease_lost";
      return "hang";
    }
    const prev = this.steps.get(w.name);
    this.steps.set(w.name, {
      name: w.name,
      seq: w.seq,
      kind: w.kind,
      status: w.status,
      attempts: w.attempts,
      result: w.result ?? null,
      error: w.error ?? null,
      wakeAtMs: w.wakeAtMs ?? null,
      completedOrder: prev?.completedOrder ?? null,
      hasCompensation: w.hasCompensation ?? false,
      compensationStatus: null,
      compensationAttempts: 0,
      compensationWakeAtMs: null,
    });
    if (answer === "cancelled") {
      this.halt ??= "cancelled";
      return "hang";
    }
    return "ok";
  }

  async #track<R>(fn: () => Promise<R>): Promise<R> {
    this.#inflight++;
    try {
      return await fn();
    } finally {
      this.#inflight--;
      this.#quiet();
    }
  }

  #suspend(status: Suspension["status"], wakeAtMs: number | null, event?: string): void {
    const s = this.suspension;
    if (!s) this.suspension = { status, wakeAtMs, events: [] };
    else if (wakeAtMs !== null && (s.wakeAtMs === null || wakeAtMs < s.wakeAtMs)) {
      s.status = status;
      s.wakeAtMs = wakeAtMs;
    }
    if (event !== undefined) this.suspension!.events.push(event);
    this.#quiet();
  }

  #quiet(): void {
    if (this.#inflight !== 0) return;
    const waiting = this.#onQuiet;
    this.#onQuiet = [];
    for (const f of waiting) f();
  }
}
