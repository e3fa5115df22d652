/**
 * Request bodies: content-type check, a size limit enforced while reading (a
 * lying or absent Content-Length cannot get past it), and JSON parsing with
 * precise 4xx errors.
 */
import { escapePointerToken } from "../core/json_pointer.ts";
import { HttpError } from "./problem.ts";

/** Default body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

const tooLarge = (limit: number) =>
  new HttpError({
    status: 413,
    code: "body_too_large",
    detail: `The request body exceeds ${limit} bytes.`,
  });

/** True for `application/json` and `application/*+json`, any parameters. */
function isJsonContentType(value: string | null): boolean {
  if (value === "application/json") return true; // what clients send; no parsing
  if (!value) return false;
  const type = value.split(";", 1)[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/** Reads at most `limit` bytes of the body; throws 413 as soon as it grows past it. */
export async function readBodyBytes(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (declared !== null) {
    // On the wire, HTTP framing makes the body exactly Content-Length bytes, so
    // the runtime's native read is safe (and touching req.body first would build
    // a ReadableStream for nothing); the size is still checked afterwards for
    // constructed Requests whose header may lie.
    const bytes = new Uint8Array(await req.arrayBuffer());
    if (bytes.byteLength > limit) throw tooLarge(limit);
    return bytes;
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Reads and parses a JSON body: 415 wrong type, 413 too large, 400 malformed. */
export async function readJsonBody(req: Request, limit = DEFAULT_BODY_LIMIT): Promise<unknown> {
  if (!isJsonContentType(req.headers.get("content-type"))) {
    throw new HttpError({
      status: 415,
      code: "unsupported_media_type",
      detail: "Send the body as application/json.",
      headers: { "accept-post": "application/json" },
    });
  }
  // A sized body (every body on the wire) is read in one await, not through the
  // nested readBodyBytes; the size is checked before and after as there.
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  const bytes = declared !== null
    ? new Uint8Array(await req.arrayBuffer())
    : await readBodyBytes(req, limit);
  if (bytes.byteLength > limit) throw tooLarge(limit);
  // The lenient decoder is the runtime's fast path; only a body that decoded to a
  // replacement character (rare) is re-checked strictly to tell bad bytes apart.
  const text = decoder.decode(bytes);
  if (text.includes("\uFFFD")) {
    try {
      strictDecoder.decode(bytes);
    } catch {
      throw new HttpError({
        status: 400,
        code: "malformed_body",
        detail: "The body is not UTF-8.",
      });
    }
  }
  if (text.length === 0) {
    throw new HttpError({ status: 400, code: "malformed_json", detail: "The body is empty." });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HttpError({
      status: 400,
      code: "malformed_json",
      detail: `The body is not valid JSON: ${(error as Error).message}`,
    });
  }
  // A lone surrogate escape parses, but is no Unicode text: stored, it would turn
  // silently into U+FFFD. Only bodies holding a surrogate escape are walked.
  if (SURROGATE_ESCAPE.test(text)) {
    const pointer = unpairedSurrogate(value, "");
    if (pointer !== null) {
      throw new HttpError({
        status: 400,
        code: "malformed_body",
        detail: "The body holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF).",
        errors: [{ pointer, detail: "Not valid Unicode text" }],
      });
    }
  }
  return value;
}

const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/**
 * The JSON Pointer of the first string (or key) that is not well-formed, or
 * null. Iterative: a 1 MiB body can nest deeper than the call stack goes.
 */
function unpairedSurrogate(root: unknown, base: string): string | null {
  const stack: [unknown, string][] = [[root, base]];
  while (stack.length > 0) {
    const [value, at] = stack.pop()!;
    if (typeof value === "string") {
      if (!value.isWellFormed()) return at;
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], `${at}/${i}`]);
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        const path = `${at}/${escapePointerToken(key)}`;
        if (!key.isWellFormed()) return path;
        stack.push([item, path]);
      }
    }
  }
  return null;
}
