/**
 * Step results must be plain JSON: what the first run returns must be exactly
 * what a replay reads back from Postgres, or the two would behave differently.
 */
import { describeError } from "../core/errors.ts";

/** Largest result kept, bytes of JSON text (`workflows.max_result_bytes()` is the same). */
export const MAX_RESULT_BYTES = 262_144;

/** The value as stored: `undefined` becomes null; anything not plain JSON is refused. */
export function toJsonResult(value: unknown): { ok: true; value: unknown } | {
  ok: false;
  reason: string;
} {
  try {
    const bad = firstNonJson(value === undefined ? null : value, "", new Set());
    if (bad !== null) return { ok: false, reason: `is not JSON: ${bad}` };
    const text = JSON.stringify(value === undefined ? null : value);
    // Postgres' jsonb cannot hold U+0000; storing it would fail on every retry.
    if (text.includes("\\u0000")) {
      return { ok: false, reason: "contains U+0000 (jsonb cannot store it)" };
    }
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > MAX_RESULT_BYTES) {
      return { ok: false, reason: `is ${bytes} bytes of JSON; the limit is ${MAX_RESULT_BYTES}` };
    }
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `is not JSON: ${describeError(error)}` };
  }
}

function firstNonJson(v: unknown, at: string, seen: Set<object>): string | null {
  switch (typeof v) {
    case "string":
    case "boolean":
      return null;
    case "number":
      return Number.isFinite(v) ? null : `${at || "/"} is ${v}`;
    case "object": {
      if (v === null) return null;
      if (seen.has(v)) return `${at || "/"} is circular`;
      const proto = Object.getPrototypeOf(v);
      if (Array.isArray(v)) {
        if (proto !== Array.prototype) return `${at || "/"} is not a plain array`;
        seen.add(v);
        for (let i = 0; i < v.length; i++) {
          const bad = firstNonJson(v[i], `${at}/${i}`, seen);
          if (bad) return bad;
        }
        seen.delete(v);
        return null;
      }
      if (proto !== Object.prototype && proto !== null) {
        return `${at || "/"} is a ${proto?.constructor?.name ?? "non-plain object"}`;
      }
      seen.add(v);
      for (const key of Object.keys(v)) {
        // JSON drops undefined properties; reading them back gives undefined again.
        if ((v as Record<string, unknown>)[key] === undefined) continue;
        const bad = firstNonJson((v as Record<string, unknown>)[key], `${at}/${key}`, seen);
        if (bad) return bad;
      }
      seen.delete(v);
      return null;
    }
    default:
      return `${at || "/"} is ${typeof v}`;
  }
}
