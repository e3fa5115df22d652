/**
 * JSON Pointers (RFC 6901) into request bodies and job payloads: where a
 * validation problem is. One escaping rule for every place that builds them,
 * and the one unescaped form people read in dead letters.
 */

/** One field-level validation problem; `pointer` is a JSON Pointer into the checked value. */
export interface FieldError {
  pointer: string;
  detail: string;
}

/** A reference token: `~` becomes `~0`, `/` becomes `~1`. */
export function escapePointerToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** The pointer to `path` below `base` (`""` is the whole value). */
function jsonPointer(base: string, path: readonly PropertyKey[]): string {
  let out = base;
  for (const key of path) out += "/" + escapePointerToken(String(key));
  return out;
}

/**
 * A path for people, not parsers: `/headers/X/Y` with nothing escaped ("/" for
 * the whole value). Dead-letter reasons use it; they are read, never resolved.
 */
export function plainPath(path: readonly PropertyKey[]): string {
  return "/" + path.map(String).join("/");
}

/** Schema issues (zod's shape) as field errors, pointers rooted at `base`. */
export function fieldErrors(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  base: string,
): FieldError[] {
  return issues.map((issue) => ({ pointer: jsonPointer(base, issue.path), detail: issue.message }));
}
