/**
 * Printing: aligned Markdown tables (readable in a terminal and pasteable into
 * docs) and the final targets table with "met"/"missed". Reporting, not a test:
 * nothing here fails a run because a target was missed.
 */
import { fmtRatio } from "./stats.ts";

/** Prints a Markdown table with padded columns. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (c ?? "").padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(header));
  console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
  for (const r of rows) console.log(line(r));
}

/** One target: a measured ratio against a bound. */
export interface Target {
  what: string;
  /** The measured ratio (ratio of medians). */
  ratio: number;
  /** ">=" means higher is better. */
  op: ">=" | "<=";
  bound: number;
  /** Worst and best pairing of the samples behind the ratio, when known. */
  range?: [number, number];
}

/** Prints the targets with "met"/"missed" (unmeasurable ones say so). */
export function targetsTable(title: string, targets: Target[]): void {
  console.log(`\n${title}`);
  table(
    ["target", "measured (ratio of medians)", "per-round range", "bound", "status"],
    targets.map((t) => {
      const ok = Number.isFinite(t.ratio)
        ? (t.op === ">=" ? t.ratio >= t.bound : t.ratio <= t.bound)
        : null;
      return [
        t.what,
        fmtRatio(t.ratio),
        t.range ? `${fmtRatio(t.range[0])}-${fmtRatio(t.range[1])}` : "-",
        `${t.op} ${t.bound}x`,
        ok === null ? "not measured" : ok ? "met" : "missed",
      ];
    }),
  );
}
