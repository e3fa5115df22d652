/**
 * Errors at the bottom of the stack: the base class every layer's typed errors
 * extend ({@link LayerError}: a stable `code` and the `cause`; http/problem.ts
 * decides what HTTP answer each gets), and the one way to turn any thrown value
 * into text ({@link describeError}, {@link errorMessage}).
 *
 * Turning a thrown value into text must itself never throw, and the text must be
 * bounded and storable in Postgres. A handler may throw anything: undefined, a symbol, a BigInt, a
 * Proxy whose every trap throws, an object whose `toJSON` or getters throw, a
 * circular null-prototype object. Every step that could call back into such a
 * value is guarded, so describing an error can never itself throw.
 */

/** An error of one layer (env, db, auth, queue, resilience): a stable `code` and the `cause`. */
export class LayerError extends Error {
  /** Stable, machine-readable code, e.g. `database_unavailable`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Longest text kept (the rest is cut and marked with "…"). */
export const ERROR_TEXT_LIMIT = 2000;

/** `Name: message` for error-like values, a JSON or tag rendering otherwise; never throws. */
export function describeError(error: unknown): string {
  let text: string;
  try {
    text = describe(error);
  } catch {
    text = `non-error thrown: ${typeof error}`;
  }
  return bound(text);
}

/**
 * The message of an Error, else the value described as {@link describeError} does
 * (for log fields that have always held the bare message).
 */
export function errorMessage(error: unknown): string {
  const message = safeGet(error, "message");
  return isInstance(error, Error) && typeof message === "string" ? message : describeError(error);
}

/** `value instanceof type`, false where the check itself throws (a Proxy's getPrototypeOf trap). */
export function isInstance<T>(
  value: unknown,
  type: abstract new (...args: never[]) => T,
): value is T {
  try {
    return value instanceof type;
  } catch {
    return false;
  }
}

/** `value[key]`, undefined where reading it throws. */
export function safeGet(value: unknown, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  switch (typeof error) {
    case "string":
      return error.length > 0 ? error : "non-error thrown: empty string";
    case "object":
      return error === null ? "non-error thrown: null" : describeObject(error);
    case "function": {
      const name = safeGet(error, "name");
      return `non-error thrown: function ${
        typeof name === "string" && name ? name : "(anonymous)"
      }`;
    }
    default:
      // undefined, number, boolean, bigint, symbol: String() is defined for all of them.
      return `non-error thrown: ${String(error)}`;
  }
}

function describeObject(error: object): string {
  const message = safeGet(error, "message");
  if (typeof message === "string") {
    const name = safeGet(error, "name");
    const label = typeof name === "string" && name ? name : "Error";
    return message ? `${label}: ${message}` : label;
  }
  const json = toJson(error);
  if (json !== undefined) return `non-error thrown: ${json}`;
  try {
    return `non-error thrown: ${Object.prototype.toString.call(error)}`;
  } catch {
    return "non-error thrown: unprintable object";
  }
}

/** JSON with BigInts as `123n` and repeated objects as "[Circular]"; undefined if it cannot. */
function toJson(value: object): string | undefined {
  const seen = new WeakSet<object>();
  try {
    const out = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return `${v}n`;
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    });
    return typeof out === "string" ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bounded and storable: Postgres text and jsonb refuse NUL, and a cut may split
 * a surrogate pair (lone surrogates do not survive UTF-8). Escaping NUL can at
 * most double the kept text, which stays within the 4,000 chars SQL keeps.
 */
function bound(text: string): string {
  const cut = text.length > ERROR_TEXT_LIMIT;
  const head = (cut ? text.slice(0, ERROR_TEXT_LIMIT) : text).replaceAll("\0", "\\0")
    .toWellFormed();
  return cut ? head + "…" : head;
}
