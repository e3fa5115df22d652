/**
 * Cancellation of running steps. `workflows.cancel` only marks a run; the
 * worker replaying it learns of the mark here. While any invocation is under
 * way, the worker asks Postgres every `pollMs` which of its runs are marked, in
 * one statement for all of them (`workflows.cancel_requested`), and aborts those
 * runs' signals: each running step's `signal` aborts with a
 * {@link WorkflowCancelledError}. A poll rather than LISTEN/NOTIFY: nothing is
 * lost when a connection drops, and it works through a transaction pooler. A
 * failed poll is logged and tried again at the next tick; the cancel is then
 * still seen when the step records its outcome (record_step answers "cancelled").
 */
import type { Sql } from "npm:postgres@3";
import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { WorkflowCancelledError } from "./errors.ts";

/** How often a worker with invocations under way looks for cancels (default). */
export const CANCEL_POLL_MS = 500;

interface Watched {
  controller: AbortController;
  refs: number;
}

/** One worker's watch over the runs it is replaying. */
export class CancelWatch {
  readonly #sql: Sql;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #runs = new Map<number, Watched>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #polling = false;

  constructor(sql: Sql, pollMs: number, log: Logger) {
    if (!(pollMs > 0 && Number.isFinite(pollMs))) {
      throw new TypeError(`cancel poll interval must be a positive number of ms, got ${pollMs}`);
    }
    this.#sql = sql;
    this.#pollMs = pollMs;
    this.#log = log;
  }

  /** Watches `runId` until `release()`: the signal aborts when the run is cancelled. */
  watch(runId: number): { signal: AbortSignal; release(): void } {
    let entry = this.#runs.get(runId);
    if (!entry) {
      entry = { controller: new AbortController(), refs: 0 };
      this.#runs.set(runId, entry);
    }
    entry.refs++;
    this.#schedule();
    let released = false;
    const watched = entry;
    return {
      signal: watched.controller.signal,
      release: () => {
        if (released) return;
        released = true;
        if (--watched.refs === 0 && this.#runs.get(runId) === watched) this.#runs.delete(runId);
        if (this.#runs.size === 0 && this.#timer !== null) {
          clearTimeout(this.#timer);
          this.#timer = null;
        }
      },
    };
  }

  #schedule(): void {
    if (this.#timer !== null || this.#polling || this.#runs.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#poll();
    }, this.#pollMs);
  }

  async #poll(): Promise<void> {
    const ids = [...this.#runs.entries()].filter(([, w]) => !w.controller.signal.aborted)
      .map(([id]) => id);
    if (ids.length > 0) {
      this.#polling = true;
      try {
        const rows = await this.#sql<{ id: string }[]>`
          select id from workflows.cancel_requested(${ids}::bigint[]) as id`;
        for (const { id } of rows) {
          const runId = Number(id);
          this.#runs.get(runId)?.controller.abort(new WorkflowCancelledError(runId));
        }
      } catch (error) {
        this.#log.warn("workflow cancel poll failed", { error: describeError(error) });
      } finally {
        this.#polling = false;
      }
    }
    this.#schedule();
  }
}
