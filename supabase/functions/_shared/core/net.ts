/** Host names that never leave this machine, as URL parsers print them. */

/** `localhost` or a name under `.localhost` (RFC 6761: always loopback). */
export function isLocalhostName(hostname: string): boolean {
  return hostname === "localhost" || hostname.endsWith(".localhost");
}

/** A loopback host: a localhost name, `[::1]`, or 127.0.0.0/8. */
export function isLoopbackHost(hostname: string): boolean {
  return isLocalhostName(hostname) || hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}
