/**
 * Helpers with no knowledge of the stack, shared by its folders (and the
 * scripts): path questions that never throw, bounded waits, error messages.
 */
export { sleep, waitAtMost } from "./async.ts";
export { errorMessage } from "./errors.ts";
export { exists, isDirectory, isFile, lexists } from "./fs.ts";
