/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent`
 * strictly, making new ids, and the child spans that requests, outbound calls
 * and job runs log under. No regular expressions and no allocation beyond the
 * result: the request pipeline parses the header only when a log line or an
 * outbound call first needs the trace.
 */

/** One span's place in a trace: what log lines carry and what goes out as `traceparent`. */
export interface TraceContext {
  /** 32 lowercase hex digits, never all zero. */
  readonly traceId: string;
  /** This span's id: 16 lowercase hex digits, never all zero. */
  readonly spanId: string;
  /** The caller's span (from the incoming `traceparent`), if any. */
  readonly parentSpanId: string | undefined;
  /** Trace flags as two lowercase hex digits (bit 0: sampled). */
  readonly flags: string;
  /** The vendor `tracestate`, passed on unchanged (when it was valid). */
  readonly tracestate: string | undefined;
}

/** The fields of a `traceparent` header. */
export interface Traceparent {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

/** W3C: a tracestate this long or shorter must be passed on; longer ones are dropped here. */
export const TRACESTATE_MAX = 512;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** True when s[from, to) is lowercase hex; `nonZero` also requires some digit other than 0. */
function isLowerHex(s: string, from: number, to: number, nonZero: boolean): boolean {
  let any = !nonZero;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    const digit = c >= 48 && c <= 57;
    if (!digit && !(c >= 97 && c <= 102)) return false;
    if (c !== 48) any = true;
  }
  return any;
}

/**
 * Parses a `traceparent` strictly: version 00 is exactly 55 characters; a later
 * version (not ff) is parsed by its first four fields, which must be followed by
 * the end or a "-" (the spec's forward compatibility). Ids must be lowercase hex
 * and not all zero. Anything else is null: the caller starts a new trace.
 */
export function parseTraceparent(header: string | null | undefined): Traceparent | null {
  if (!header || header.length < 55) return null;
  if (!isLowerHex(header, 0, 2, false)) return null;
  const version = header.slice(0, 2);
  if (version === "ff") return null;
  if (version === "00" ? header.length !== 55 : header.length > 55 && header[55] !== "-") {
    return null;
  }
  if (header[2] !== "-" || header[35] !== "-" || header[52] !== "-") return null;
  if (!isLowerHex(header, 3, 35, true) || !isLowerHex(header, 36, 52, true)) return null;
  if (!isLowerHex(header, 53, 55, false)) return null;
  return {
    version,
    traceId: header.slice(3, 35),
    parentId: header.slice(36, 52),
    flags: header.slice(53, 55),
  };
}

/** A key of a tracestate list member (simple or multi-tenant `tenant@system`). */
function validKey(key: string): boolean {
  if (key.length === 0 || key.length > 256) return false;
  const at = key.indexOf("@");
  if (at !== -1 && (at === 0 || at === key.length - 1 || at > 241 || key.length - at > 15)) {
    return false;
  }
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (i === at) continue;
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 45 ||
      c === 42 || c === 47;
    if (!ok) return false;
  }
  const first = key.charCodeAt(0);
  return (first >= 97 && first <= 122) || (first >= 48 && first <= 57);
}

/** A tracestate value: 1..256 printable ASCII characters except "," and "=", not ending in space. */
function validValue(value: string): boolean {
  if (value.length === 0 || value.length > 256 || value.endsWith(" ")) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x2c || c === 0x3d) return false;
  }
  return true;
}

/**
 * The `tracestate` to pass on, or undefined when it is absent, malformed (a bad
 * member, a key twice, more than 32 members) or longer than {@link TRACESTATE_MAX}.
 */
export function parseTracestate(header: string | null | undefined): string | undefined {
  if (!header || header.length > TRACESTATE_MAX) return undefined;
  const keys = new Set<string>();
  const members: string[] = [];
  for (const raw of header.split(",")) {
    const member = raw.trim();
    if (member === "") continue;
    const eq = member.indexOf("=");
    if (eq === -1) return undefined;
    const key = member.slice(0, eq);
    if (!validKey(key) || !validValue(member.slice(eq + 1)) || keys.has(key)) return undefined;
    keys.add(key);
    members.push(member);
  }
  if (members.length === 0 || members.length > 32) return undefined;
  return members.join(",");
}

/**
 * Random bytes for ids, drawn 4 KiB at a time: one `getRandomValues` call per
 * ~170 traces instead of two per request (ids need to be unique, not secret).
 */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** `bytes` random bytes as lowercase hex, never all zero. */
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  let out = "";
  let any = 0;
  for (let i = poolAt; i < poolAt + bytes; i++) {
    any |= pool[i]!;
    out += HEX[pool[i]!];
  }
  poolAt += bytes;
  return any === 0 ? randomHex(bytes) : out;
}

/** A new trace id (32 hex digits). */
export function newTraceId(): string {
  return randomHex(16);
}

/** A new span id (16 hex digits). */
export function newSpanId(): string {
  return randomHex(8);
}

/**
 * The span of work that continues `traceparent` (a request's or a job's): the
 * same trace with a new span id, or a new trace when the header is absent or
 * invalid. A future version's flags keep only the sampled bit (the others may
 * mean something else there).
 */
export function continueTrace(
  traceparent: string | null | undefined,
  tracestate?: string | null,
): TraceContext {
  const parent = parseTraceparent(traceparent);
  if (!parent) {
    return {
      traceId: newTraceId(),
      spanId: newSpanId(),
      parentSpanId: undefined,
      flags: "01",
      tracestate: undefined,
    };
  }
  const flags = parent.version === "00"
    ? parent.flags
    : (parseInt(parent.flags, 16) & 1 ? "01" : "00");
  return {
    traceId: parent.traceId,
    spanId: newSpanId(),
    parentSpanId: parent.parentId,
    flags,
    tracestate: parseTracestate(tracestate),
  };
}

/** The `traceparent` that makes `trace`'s span the parent of the next hop (always version 00). */
export function traceparentOf(trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`;
}

/** Sets `traceparent` (and `tracestate`) on outgoing headers unless the caller set them. */
export function injectTrace(headers: Headers, trace: TraceContext): void {
  if (headers.has("traceparent")) return;
  headers.set("traceparent", traceparentOf(trace));
  if (trace.tracestate !== undefined) headers.set("tracestate", trace.tracestate);
}

/** The log fields of a span: traceId, spanId and (when there is one) parentSpanId. */
export function traceFields(trace: TraceContext): Record<string, string> {
  return trace.parentSpanId === undefined
    ? { traceId: trace.traceId, spanId: trace.spanId }
    : { traceId: trace.traceId, spanId: trace.spanId, parentSpanId: trace.parentSpanId };
}
