/**
 * SSRF guard for outbound webhooks: only http(s), and never a private, loopback,
 * link-local (cloud metadata), CGNAT, multicast or reserved address (see
 * private_address.ts), whether the URL names it directly, in any form the URL
 * parser accepts, or a DNS name resolves to it. Hosts listed in `allowHosts`
 * are exempt (local development, tests).
 *
 * A refused target is permanent (`ssrf_blocked`); a lookup that fails or takes
 * too long is not (DNS outages end), so it is thrown as a retryable
 * {@link DnsLookupError}.
 *
 * Limit: the name is resolved here and again by fetch; a DNS answer that changes
 * in between (rebinding) is not caught. Egress rules are the complete defence.
 */
import { describeError } from "../../core/errors.ts";
import { isLocalhostName } from "../../core/net.ts";
import { abortable, withTimeout } from "../../core/time.ts";
import { PermanentJobError } from "../errors.ts";
import { isPrivateAddress, parseV4 } from "./private_address.ts";

export { isPrivateAddress } from "./private_address.ts";

/** Options of {@link assertPublicUrl}. */
export interface SsrfOptions {
  /**
   * Hosts that may be private, e.g. ["127.0.0.1"] in tests. Compared after the
   * URL parser's normalisation, so "LOCALHOST.", "::1" and "[::1]" all work.
   */
  allowHosts?: readonly string[];
  /**
   * Every A and AAAA address of `hostname` (default: Deno.resolveDns). It
   * should stop when `signal` aborts; the guard stops waiting for it either way.
   */
  resolve?: (hostname: string, signal: AbortSignal) => Promise<string[]>;
  /** How long a lookup may take before it counts as failed (default 5 s). */
  resolveTimeoutMs?: number;
}

/** The target's name could not be resolved (now): retryable, unlike a refusal. */
export class DnsLookupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DnsLookupError";
  }
}

/** Lowercase, no trailing dot, no brackets: how a host is compared with `allowHosts`. */
function hostKey(host: string): string {
  return host.toLowerCase().replace(/\.+$/, "").replace(/^\[(.*)\]$/, "$1");
}

/** An allow-list entry in the URL parser's canonical form (so "0x7f.1" means 127.0.0.1). */
function allowKey(entry: string): string {
  const raw = entry.trim();
  // Only bare hosts go through the parser: "a@b" or "a/b" would name another host.
  if (!/^[A-Za-z0-9._:\[\]-]+$/.test(raw)) return hostKey(raw);
  const bracketed = raw.includes(":") && !raw.startsWith("[") ? `[${raw}]` : raw;
  try {
    return hostKey(new URL(`http://${bracketed}/`).hostname);
  } catch {
    return hostKey(raw);
  }
}

async function resolveDns(hostname: string, signal: AbortSignal): Promise<string[]> {
  const answers = await Promise.allSettled(
    (["A", "AAAA"] as const).map((type) => Deno.resolveDns(hostname, type, { signal })),
  );
  const out: string[] = [];
  for (const answer of answers) {
    if (answer.status === "fulfilled") out.push(...answer.value);
    // "No record of this type" is an answer; any other failure leaves the
    // name's addresses unknown, and checking only half of them is not a check.
    else if (!(answer.reason instanceof Deno.errors.NotFound)) throw answer.reason;
  }
  return out;
}

/** The addresses of `host`, or a {@link DnsLookupError}; never waits past the deadline. */
async function lookup(
  host: string,
  options: SsrfOptions,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const timeoutMs = options.resolveTimeoutMs ?? 5_000;
  const timedOut = new DnsLookupError(`DNS lookup of ${host} timed out after ${timeoutMs} ms`);
  const resolve = options.resolve ?? resolveDns;
  try {
    const resolving = withTimeout((stop) => resolve(host, stop), timeoutMs, () => timedOut, signal);
    // The job's signal ends the wait too, whether or not the resolver honours it.
    const answer: unknown = await (signal ? abortable(resolving, signal) : resolving);
    if (!Array.isArray(answer) || answer.some((a) => typeof a !== "string")) {
      throw new DnsLookupError(`DNS lookup of ${host} returned no list of addresses`);
    }
    if (answer.length === 0) throw new DnsLookupError(`${host} has no A or AAAA record`);
    return answer;
  } catch (error) {
    if (error instanceof DnsLookupError) throw error;
    if (signal?.aborted && error === signal.reason) {
      throw new DnsLookupError(
        `DNS lookup of ${host} abandoned (${describeError(error)})`,
        { cause: error },
      );
    }
    throw new DnsLookupError(`DNS lookup of ${host} failed: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/**
 * Throws a non-retryable error (reason `ssrf_blocked`) unless `url` is a public
 * http(s) target, or a {@link DnsLookupError} (retryable) if its name does not
 * resolve before `resolveTimeoutMs` or `signal`.
 */
export async function assertPublicUrl(
  url: URL,
  options: SsrfOptions = {},
  signal?: AbortSignal,
): Promise<void> {
  const block = (why: string) =>
    new PermanentJobError(`refused ${url.origin}: ${why}`, { reason: "ssrf_blocked" });
  if (url.protocol !== "https:" && url.protocol !== "http:") throw block("only http(s)");
  if (url.username || url.password) throw block("credentials in URL");
  const host = hostKey(url.hostname);
  if (options.allowHosts?.some((entry) => allowKey(entry) === host)) return;
  if (host === "") throw block("no host");
  if (isLocalhostName(host) || host.endsWith(".internal")) {
    throw block("local name");
  }
  const literal = parseV4(host) !== null || url.hostname.startsWith("[");
  if (literal) {
    if (isPrivateAddress(host)) throw block("private address");
    return;
  }
  const addresses = await lookup(url.hostname, options, signal);
  const inside = addresses.find(isPrivateAddress);
  if (inside !== undefined) throw block(`${url.hostname} resolves to private address ${inside}`);
}
