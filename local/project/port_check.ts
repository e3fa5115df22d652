/** Fails fast, with the flag to use, when a port the stack needs is taken. */

/** A port is already in use; the message names it and the flag that changes it. */
export class PortInUseError extends Error {
  constructor(readonly port: number, readonly what: string, readonly flag: string) {
    super(
      `port ${port} (${what}) is already in use; stop whatever holds it or pass ${flag} <port>`,
    );
    this.name = "PortInUseError";
  }
}

/** Throws {@link PortInUseError} when 127.0.0.1:`port` cannot be bound. */
export function assertPortFree(port: number, what: string, flag: string): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw new PortInUseError(port, what, flag);
    throw error;
  }
}
