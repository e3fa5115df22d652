/**
 * Holds the log lines of one request (the gateway's access line, the
 * function's own lines: anything that names its request id) until the caller
 * knows how loud they should be. The local cron uses it so that an idle
 * queue-worker run costs no lines at the default level, while a run that did
 * work or failed is logged in full.
 */

/** Where lines go, by level. */
export interface LogSinks {
  info: (line: string) => void;
  debug: (line: string) => void;
}

/** Remembered decisions, for lines that arrive after their request was decided. */
const DECIDED_LIMIT = 64;

/** Routes lines that name a held request id; everything else goes to `info`. */
export class LogHold {
  readonly #held = new Map<string, string[]>();
  readonly #decided = new Map<string, boolean>();

  constructor(readonly sinks: LogSinks) {}

  /** Logs `line`, held back if it names (or is about) a held request id. */
  log(line: string, requestId?: string): void {
    for (const [id, lines] of this.#held) {
      if (requestId === id || line.includes(id)) return void lines.push(line);
    }
    for (const [id, loud] of this.#decided) {
      // A function's output pipe may deliver a line after the response was decided.
      if (requestId === id || line.includes(id)) return this.#emit(line, loud);
    }
    this.sinks.info(line);
  }

  /** Starts holding lines of `requestId`; the returned function releases them at info (loud) or debug. */
  hold(requestId: string): (loud: boolean) => void {
    this.#held.set(requestId, []);
    return (loud) => {
      const lines = this.#held.get(requestId) ?? [];
      this.#held.delete(requestId);
      this.#decided.set(requestId, loud);
      if (this.#decided.size > DECIDED_LIMIT) {
        this.#decided.delete(this.#decided.keys().next().value!);
      }
      for (const line of lines) this.#emit(line, loud);
    };
  }

  #emit(line: string, loud: boolean): void {
    (loud ? this.sinks.info : this.sinks.debug)(line);
  }
}
