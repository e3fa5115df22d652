/** Turning whatever was thrown into the one line a log or the terminal shows. */

/** The message of a thrown value: its `message` when it has one, else the value as text. */
export function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null | undefined)?.message;
  return typeof message === "string" ? message : String(error);
}
