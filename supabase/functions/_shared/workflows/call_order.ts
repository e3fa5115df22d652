/**
 * Determinism: a replay must call the same steps, in the same order, as the
 * recorded run. Each call takes the next position (`seq`); a name recorded at
 * another position, another name at a recorded position, a step where a sleep
 * was, or a name used twice is a {@link NonDeterminismError} naming the step.
 */
import { NonDeterminismError } from "./errors.ts";
import type { StepRow } from "./sql.ts";

/** The recorded calls of one run, checked call by call as the replay makes them. */
export class CallOrder {
  readonly #byName: ReadonlyMap<string, StepRow>;
  readonly #bySeq = new Map<number, StepRow>();
  readonly #called = new Set<string>();
  #seq = 0;

  /** `byName`: the step rows as the replay keeps them (it adds rows as it records). */
  constructor(rows: readonly StepRow[], byName: ReadonlyMap<string, StepRow>) {
    this.#byName = byName;
    for (const row of rows) this.#bySeq.set(row.seq, row);
  }

  /**
   * The position of this call and the row recorded for it, if any. Throws a
   * TypeError for a bad name and a NonDeterminismError for a call that does not
   * match the record.
   */
  enter(name: string, kind: StepRow["kind"]): { seq: number; row: StepRow | undefined } {
    if (typeof name !== "string" || name.length < 1 || name.length > 200) {
      throw new TypeError("step names must be strings of 1..200 characters");
    }
    if (this.#called.has(name)) {
      throw new NonDeterminismError(
        name,
        "the name is used twice in one run (names must be unique)",
      );
    }
    this.#called.add(name);
    const seq = this.#seq++;
    const atSeq = this.#bySeq.get(seq);
    if (atSeq && atSeq.name !== name) {
      throw new NonDeterminismError(name, `call #${seq + 1} was "${atSeq.name}" when recorded`);
    }
    const row = this.#byName.get(name);
    if (row && row.kind !== kind) {
      throw new NonDeterminismError(name, `recorded as a ${row.kind}, replayed as a ${kind}`);
    }
    if (row && row.seq !== seq) {
      throw new NonDeterminismError(
        name,
        `recorded as call #${row.seq + 1}, now call #${seq + 1}`,
      );
    }
    return { seq, row };
  }
}
