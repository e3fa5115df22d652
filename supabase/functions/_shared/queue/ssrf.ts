/**
 * SSRF guard for outbound webhooks: only http(s), and never a private, loopback,
 * link-local (cloud metadata), CGNAT, multicast or reserved address, whether the
 * URL names it directly or a DNS name resolves to it. Hosts listed in
 * `allowHosts` are exempt (local development, tests).
 *
 * Limit: the name is resolved here and again by fetch; a DNS answer that changes
 * in between (rebinding) is not caught. Egress rules are the complete defence.
 */
import { PermanentJobError } from "./errors.ts";

/** Options of {@link assertPublicUrl}. */
export interface SsrfOptions {
  /** Hostnames (as in URL.hostname) that may be private, e.g. ["127.0.0.1"] in tests. */
  allowHosts?: readonly string[];
  /** DNS lookup (default: Deno.resolveDns, A and AAAA). */
  resolve?: (hostname: string) => Promise<string[]>;
}

function v4(ip: string): number[] | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  const n = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return n.every((x) => x >= 0 && x <= 255) ? n : null;
}

function privateV4([a, b]: number[]): boolean {
  return a === 0 || a === 10 || a === 127 || a! >= 224 || // this net, private, loopback, multicast+
    (a === 100 && b! >= 64 && b! <= 127) || (a === 169 && b === 254) ||
    (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168) ||
    (a === 192 && b === 0) || (a === 198 && (b === 18 || b === 19));
}

/** True for addresses a webhook must not reach. Unparseable input counts as private. */
export function isPrivateAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, "").toLowerCase();
  const four = v4(ip);
  if (four) return privateV4(four);
  if (!ip.includes(":")) return true;
  const mapped = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip) ??
    /^::(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) return v4(mapped[1]!) ? privateV4(v4(mapped[1]!)!) : true;
  if (ip === "::" || ip === "::1") return true;
  const head = parseInt(ip.split(":")[0] || "0", 16);
  return (head & 0xfe00) === 0xfc00 || (head & 0xffc0) === 0xfe80 || (head & 0xff00) === 0xff00;
}

async function resolveDns(hostname: string): Promise<string[]> {
  const out: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      out.push(...(await Deno.resolveDns(hostname, type)));
    } catch { /* no record of this type */ }
  }
  return out;
}

/** Throws a non-retryable error (reason `ssrf_blocked`) unless `url` is a public http(s) target. */
export async function assertPublicUrl(url: URL, options: SsrfOptions = {}): Promise<void> {
  const block = (why: string) =>
    new PermanentJobError(`refused ${url.origin}: ${why}`, { reason: "ssrf_blocked" });
  if (url.protocol !== "https:" && url.protocol !== "http:") throw block("only http(s)");
  if (url.username || url.password) throw block("credentials in URL");
  const host = url.hostname;
  if (options.allowHosts?.includes(host)) return;
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".internal")) {
    throw block("local name");
  }
  const literal = v4(host) !== null || host.startsWith("[");
  const addresses = literal ? [host] : await (options.resolve ?? resolveDns)(host);
  if (addresses.length === 0) throw block("name does not resolve");
  if (addresses.some(isPrivateAddress)) throw block("private address");
}
