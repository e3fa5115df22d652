/**
 * Summaries of repeated measurements: the median and the spread (min-max and
 * the interquartile range), and ratios of medians. Nothing here asserts timings.
 */

/** A set of samples of one measurement (higher or lower is better: the caller knows). */
export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** 25th and 75th percentiles (linear interpolation). */
  q1: number;
  q3: number;
}

function quantileSorted(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Median (mean of the middle two for an even count), min, max and quartiles. */
export function summarize(samples: number[]): Summary {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantileSorted(s, 0.5),
    min: s[0] ?? NaN,
    max: s.at(-1) ?? NaN,
    q1: quantileSorted(s, 0.25),
    q3: quantileSorted(s, 0.75),
  };
}

/** A quantile of unsorted samples (latency percentiles). */
export function quantile(samples: number[], q: number): number {
  return quantileSorted([...samples].sort((a, b) => a - b), q);
}

/** Compact number: 61234 -> "61.2k", 812 -> "812", 3.456 -> "3.46". */
export function compact(x: number): string {
  if (!Number.isFinite(x)) return "-";
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (a >= 1e3) return `${(x / 1e3).toFixed(2)}k`;
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** "median (min-max, n=3)". */
export function fmtSummary(s: Summary): string {
  if (s.n === 0) return "-";
  return `${compact(s.median)} (${compact(s.min)}-${compact(s.max)}, n=${s.n})`;
}

/** Ratio of medians, "1.42x". */
export function ratio(a: Summary | number, b: Summary | number): number {
  const x = typeof a === "number" ? a : a.median;
  const y = typeof b === "number" ? b : b.median;
  return x / y;
}

/** "1.42x" (or "-" when not computable). */
export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : "-";
}

/**
 * The spread of a ratio: min and max of the per-round ratios a[i] / b[i]
 * (samples recorded round by round, so index i of both was measured in the
 * same round, close in time). Shown so a ratio of medians is never read as
 * more precise than the samples behind it.
 */
export function pairedRange(a: number[], b: number[]): [number, number] {
  const rs = a.slice(0, Math.min(a.length, b.length)).map((x, i) => x / b[i]!);
  const s = summarize(rs);
  return [s.min, s.max];
}
