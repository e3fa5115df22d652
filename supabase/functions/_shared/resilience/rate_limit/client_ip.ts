/**
 * The caller's IP address, as far as something we trust vouches for it.
 *
 * Forwarding headers are written by whoever sends the request, so a header is
 * believed only when configuration names it (`RATE_LIMIT_TRUSTED_IP_HEADER`):
 * a proxy we trust must overwrite it, or (for `x-forwarded-for`) append to it,
 * in which case the client is the hop `RATE_LIMIT_TRUSTED_PROXY_HOPS` from the
 * right; everything left of that was written by the client. Without a vouched-for
 * value the connection's peer address is used, else one shared `unknown` bucket.
 *
 * @example
 * const ip = clientIp(req, { header: "x-forwarded-for", hops: 1 }, "10.0.0.7");
 */

import type { ClientIpPolicy } from "../../core/env.ts";

/** What an address is keyed on when nothing vouches for one: a shared bucket, never a fresh one. */
export const UNKNOWN_IP = "unknown";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// Only characters an IPv6 literal can hold: keeps ports, zones, brackets and
// anything URL-significant away from the URL parser below.
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * Validates and normalises one address: IPv4 in strict dotted-decimal (no
 * leading zeros, no short or hex forms), IPv6 in RFC 5952 form, IPv4-mapped
 * IPv6 as the IPv4 address. Anything else (ports, zones, lists, names) is null.
 */
export function parseIp(text: string): string | null {
  const value = text.trim();
  if (IPV4.test(value)) return value;
  if (!value.includes(":") || !IPV6_CHARS.test(value)) return null;
  let host: string;
  try {
    // The WHATWG URL parser implements RFC 4291 parsing and RFC 5952 output.
    host = new URL(`http://[${value}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const mapped = MAPPED_V4.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

/**
 * The bucket an address belongs to: an IPv4 address itself, an IPv6 address's
 * /64 (one subscriber is routinely given a whole /64, so per-address buckets
 * would hand one client 2^64 of them).
 */
export function ipBucket(ip: string): string {
  if (!ip.includes(":")) return ip;
  const [head, tail = ""] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = ip.includes("::")
    ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** The value the policy's header vouches for, or null (absent, malformed, or too few hops). */
function vouchedIp(headers: Headers, policy: ClientIpPolicy): string | null {
  if (!policy.header) return null;
  const raw = headers.get(policy.header);
  if (raw === null) return null;
  if (policy.header !== "x-forwarded-for") {
    // One value expected: a repeated header (joined with ", ") is refused, not picked from.
    return raw.includes(",") ? null : parseIp(raw);
  }
  // Scan from the right: the last `hops` entries were appended by our proxies;
  // the client controls everything before them, however long.
  let end = raw.length;
  for (let i = 1; i < policy.hops; i++) {
    end = raw.lastIndexOf(",", end - 1);
    if (end === -1) return null;
  }
  const start = raw.lastIndexOf(",", end - 1) + 1;
  return parseIp(raw.slice(start, end));
}

/**
 * The caller's address: the trusted header's value when it holds a valid one,
 * else the connection's peer address, else {@link UNKNOWN_IP}.
 */
export function clientIp(
  req: Request,
  policy: ClientIpPolicy,
  remoteAddr: string | null | undefined,
): string {
  return vouchedIp(req.headers, policy) ?? (remoteAddr ? parseIp(remoteAddr) : null) ??
    UNKNOWN_IP;
}
