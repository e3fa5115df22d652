/**
 * Which IP addresses an outbound webhook must not reach. IPv4 is checked
 * against the special-purpose ranges that are not globally reachable; IPv6 is
 * allowed only inside global unicast (2000::/3), and every IPv6 form that
 * carries an IPv4 address (mapped, compatible, translated, NAT64, 6to4, Teredo,
 * ISATAP) is judged by the IPv4 address it carries, because a gateway or the
 * kernel turns it into a packet to that IPv4 address.
 */

/** [first address, prefix length]: RFC 6890 / IANA special-purpose ranges. */
const BLOCKED_V4: readonly (readonly [string, number])[] = [
  ["0.0.0.0", 8], // "this network"; 0.0.0.0 reaches the local host
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // CGNAT shared space
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // TEST-NET-1
  ["192.88.99.0", 24], // deprecated 6to4 relay anycast
  ["192.168.0.0", 16],
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // TEST-NET-2
  ["203.0.113.0", 24], // TEST-NET-3
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and 255.255.255.255 broadcast
];

const V4_RANGES = BLOCKED_V4.map(([ip, bits]) => {
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (parseV4(ip)! & mask) >>> 0, mask };
});

/** Strict dotted quad (what resolvers and the URL serialiser produce), as a uint32. */
export function parseV4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

/** Eight 16-bit groups; a zone id (`%eth0`) is ignored, the address decides. */
function parseV6(text: string): number[] | null {
  const zone = text.indexOf("%");
  const ip = zone >= 0 ? text.slice(0, zone) : text;
  const halves = ip.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string, last: boolean): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const fields = part.split(":");
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (last && i === fields.length - 1 && f.includes(".")) {
        const four = parseV4(f);
        if (four === null) return null;
        out.push(four >>> 16, four & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(f)) {
        out.push(parseInt(f, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const all = groups(ip, true);
    return all && all.length === 8 ? all : null;
  }
  const head = groups(halves[0]!, false);
  const tail = groups(halves[1]!, true);
  if (!head || !tail || head.length + tail.length > 7) return null;
  return [...head, ...Array(8 - head.length - tail.length).fill(0), ...tail];
}

/** True for an IPv4 address (uint32) in a range that is not globally reachable. */
function isPrivateV4(address: number): boolean {
  return V4_RANGES.some((r) => ((address & r.mask) >>> 0) === r.base);
}

const v4At = (g: readonly number[], i: number) => ((g[i]! << 16) | g[i + 1]!) >>> 0;

/** True for an IPv6 address (eight groups) a webhook must not reach. */
function isPrivateV6(g: readonly number[]): boolean {
  const [g0, g1, g2, g3, g4, g5] = g as [number, number, number, number, number, number];
  const zero64 = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0;
  const tail = v4At(g, 6);
  // ::/96 (compatible; :: and ::1 land in 0.0.0.0/8), ::ffff:0:0/96 (mapped),
  // ::ffff:0:0:0/96 (translated).
  if (zero64 && ((g4 === 0 && (g5 === 0 || g5 === 0xffff)) || (g4 === 0xffff && g5 === 0))) {
    return isPrivateV4(tail);
  }
  if (g0 === 0x64 && g1 === 0xff9b) {
    // 64:ff9b::/96 is the well-known NAT64 prefix; 64:ff9b:1::/48 is for local
    // use only (RFC 8215), with operator-chosen formats, so none of it is public.
    if (g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return isPrivateV4(tail);
    if (g2 === 1) return true;
  }
  if ((g0 & 0xe000) !== 0x2000) return true; // outside global unicast: ULA, link-local, multicast...
  if (g0 === 0x2002) return isPrivateV4(v4At(g, 1)); // 6to4
  if (g0 === 0x2001 && g1 === 0) {
    // Teredo: server IPv4 in bits 32-63, client IPv4 inverted in the last 32 bits.
    return isPrivateV4(v4At(g, 2)) || isPrivateV4((~tail) >>> 0);
  }
  if (g0 === 0x2001 && g1 < 0x200) return true; // rest of 2001::/23, IETF protocol assignments
  if (g0 === 0x2001 && g1 === 0xdb8) return true; // documentation
  if (g0 === 0x3fff && g1 < 0x1000) return true; // documentation (RFC 9637)
  // ISATAP interface identifier (::0:5efe:a.b.c.d, u/g bits may be set).
  if ((g4 & 0xfcff) === 0 && g5 === 0x5efe) return isPrivateV4(tail);
  return false;
}

/**
 * True for addresses a webhook must not reach: a dotted quad or an IPv6
 * address, bracketed or not, with or without a zone id. Anything that does not
 * parse as an address counts as private.
 */
export function isPrivateAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, "");
  const four = parseV4(ip);
  if (four !== null) return isPrivateV4(four);
  const six = parseV6(ip);
  return six === null || isPrivateV6(six);
}
