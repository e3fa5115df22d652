/**
 * The `headers` of a `webhook.deliver` payload: a schema that refuses what
 * cannot or must not be sent, so a bad job is refused at enqueue (422) or
 * dead-lettered at once (`invalid_payload`), instead of failing every attempt.
 *
 * Hop-by-hop and proxy headers are refused, not dropped: the caller named them
 * on purpose (a `Host` for virtual hosting, a `Content-Length`), and quietly
 * sending something else would deliver a request they did not ask for. The
 * HTTP client sets these itself for the connection it opens.
 */
import { z } from "npm:zod@4";

/** RFC 9110 token: the only characters a field name may contain. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * RFC 9110 field value: visible ASCII, obs-text (0x80-0xFF), space and tab.
 * Everything else is a control character (CR/LF inject headers, NUL truncates)
 * or not a ByteString, which fetch refuses.
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "transfer-encoding",
  "host",
  "content-length",
]);

/** Limits that keep a request within what servers accept (typically 8-16 KiB of headers). */
const HEADER_LIMITS = { count: 100, nameLength: 256, valueLength: 8_192 } as const;

/** Why `name` may not be sent by a webhook, or null if it may. */
function headerNameProblem(name: string): string | null {
  if (name.length === 0) return "header name is empty";
  if (name.length > HEADER_LIMITS.nameLength) {
    return `header name is longer than ${HEADER_LIMITS.nameLength} characters`;
  }
  if (!TOKEN.test(name)) return "header name may contain only RFC 9110 token characters";
  const lower = name.toLowerCase();
  if (HOP_BY_HOP.has(lower) || lower.startsWith("proxy-")) {
    return `"${name}" is a hop-by-hop or proxy header, set by the HTTP client; remove it`;
  }
  return null;
}

/** Why `value` may not be sent as a header value, or null if it may. */
function headerValueProblem(value: string): string | null {
  if (value.length > HEADER_LIMITS.valueLength) {
    return `header value is longer than ${HEADER_LIMITS.valueLength} characters`;
  }
  if (!FIELD_VALUE.test(value)) {
    return "header value may contain only visible characters, spaces, tabs and U+0080..U+00FF " +
      "(no CR, LF, NUL or other control characters)";
  }
  return null;
}

/** The `headers` field of `webhook.deliver`. */
export const webhookHeaders = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  const names = Object.keys(headers);
  if (names.length > HEADER_LIMITS.count) {
    ctx.addIssue({ code: "custom", message: `at most ${HEADER_LIMITS.count} headers` });
  }
  const seen = new Map<string, string>();
  for (const name of names) {
    const problem = headerNameProblem(name) ?? headerValueProblem(headers[name]!);
    if (problem) ctx.addIssue({ code: "custom", message: problem, path: [name] });
    const earlier = seen.get(name.toLowerCase());
    if (earlier !== undefined) {
      // fetch would merge them into one "a, b" value: say so rather than guess.
      ctx.addIssue({
        code: "custom",
        message: `"${name}" and "${earlier}" are the same header; give it once`,
        path: [name],
      });
    }
    seen.set(name.toLowerCase(), name);
  }
});
