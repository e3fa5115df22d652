/**
 * Each job's lease follows its own timeout. A worker that dies holding a job
 * leaves it leased until then; with one lease for the whole registry a 5 s job
 * waited out a lease sized for the slowest type. The margin covers the wait for
 * a free slot and the acknowledgement after the handler ends; a job that waited
 * longer than that has its lease renewed before it starts (see worker.ts).
 */
import { type JobDefinition, type JobRegistry } from "./job.ts";
import { timeoutOf } from "./run_job.ts";

/** Margin over a job's own timeout: 1 s plus a tenth of it, at most 5 s. */
export function leaseMarginMs(timeoutMs: number): number {
  return Math.min(5_000, 1_000 + timeoutMs / 10);
}

/** The lease a claim gives a job of this definition (or of an unknown type). */
export function leaseMsFor(def: JobDefinition | undefined): number {
  const timeout = timeoutOf(def);
  return timeout + leaseMarginMs(timeout);
}

/** Leases by job type, as `queue.claim` takes them (`lease_by_type`), and the default. */
export interface LeasePlan {
  /** For types the registry does not know (they are dead-lettered at once). */
  defaultMs: number;
  /** Milliseconds per registered type. */
  byType: ReadonlyMap<string, number>;
  /** `{"<type>": seconds}` for the claim. */
  json: string;
}

/** The lease plan of a registry. */
export function leasePlan(registry: JobRegistry): LeasePlan {
  const byType = new Map<string, number>();
  const seconds: Record<string, number> = {};
  for (const [type, def] of registry) {
    const ms = Math.min(leaseMsFor(def), 86_400_000);
    byType.set(type, ms);
    seconds[type] = ms / 1000;
  }
  return { defaultMs: leaseMsFor(undefined), byType, json: JSON.stringify(seconds) };
}
