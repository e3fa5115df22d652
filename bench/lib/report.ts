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

/** One target: a measured ratio (or, with unit "ms", a time) against a bound. */
export interface Target {
  what: string;
  /** The measured ratio (ratio of medians), or a time in ms with unit "ms". */
  ratio: number;
  /** ">=" means higher is better. */
  op: ">=" | "<=" | "<";
  bound: number;
  /** Worst and best pairing of the samples behind the ratio, when known (per round for "ms"). */
  range?: [number, number];
  /** "x" (default): a ratio; "ms": a latency. */
  unit?: "x" | "ms";
}

/** Prints the targets with "met"/"missed" (unmeasurable ones say so). */
export function targetsTable(title: string, targets: Target[]): void {
  console.log(`\n${title}`);
  table(
    [
      "target",
      targets.some((t) => t.unit === "ms")
        ? "measured (ratio of medians; ms: median of rounds)"
        : "measured (ratio of medians)",
      "per-round range",
      "bound",
      "status",
    ],
    targets.map((t) => {
      const ok = Number.isFinite(t.ratio)
        ? (t.op === ">="
          ? t.ratio >= t.bound
          : t.op === "<"
          ? t.ratio < t.bound
          : t.ratio <= t.bound)
        : null;
      const fmt = t.unit === "ms"
        ? (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : "-")
        : fmtRatio;
      return [
        t.what,
        fmt(t.ratio),
        t.range ? `${fmt(t.range[0])}-${fmt(t.range[1])}` : "-",
        t.unit === "ms" ? `${t.op} ${t.bound} ms` : `${t.op} ${t.bound}x`,
        ok === null ? "not measured" : ok ? "met" : "missed",
      ];
    }),
  );
}
