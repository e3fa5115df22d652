/**
 * The client address rate limits key on: only a configured header is believed,
 * only the hop our own proxies wrote, only a valid IP; spoofed headers of any
 * shape never move a caller into a bucket of its choosing.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import {
  clientIp,
  type ClientIpPolicy,
  ipBucket,
  parseIp,
  readEnv,
  UNKNOWN_IP,
} from "../../supabase/functions/_shared/mod.ts";

Deno.test("parseIp: valid addresses normalised, every other shape refused", () => {
  const valid: [string, string][] = [
    ["203.0.113.9", "203.0.113.9"],
    [" 198.51.100.1 ", "198.51.100.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["::1", "::1"],
    ["::", "::"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::FFFF:c000:0201", "192.0.2.1"],
    ["64:ff9b::192.0.2.1", "64:ff9b::c000:201"],
  ];
  for (const [input, expected] of valid) assert.equal(parseIp(input), expected, input);
  const invalid = [
    "",
    "unknown",
    "localhost",
    "203.0.113.9:443",
    "[2001:db8::1]",
    "[2001:db8::1]:443",
    "fe80::1%eth0",
    "203.0.113.9, 198.51.100.1",
    "203.0.113.09",
    "0x7f.0.0.1",
    "127.1",
    "256.1.1.1",
    "1.2.3.4.5",
    "2001:db8::1::2",
    "12345::",
    "1:2:3:4:5:6:7:8:9",
    "::1/128",
    "for=192.0.2.60",
    "1".repeat(100_000),
    "1.2.3.4\u0000",
    "١٢٣.1.1.1",
  ];
  for (const input of invalid) assert.equal(parseIp(input), null, JSON.stringify(input));
});

Deno.test("ipBucket: IPv4 per address, IPv6 per /64", () => {
  assert.equal(ipBucket("203.0.113.9"), "203.0.113.9");
  assert.equal(ipBucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(ipBucket("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
  assert.equal(ipBucket("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(ipBucket("::1"), "0:0:0:0::/64");
  assert.equal(ipBucket("1:2:3:4::"), "1:2:3:4::/64");
});

Deno.test("env: trusted header and hop count are validated", () => {
  const env = (vars: Record<string, string>) => readEnv((k) => vars[k]);
  assert.deepEqual(env({}).clientIp, { header: null, hops: 1 });
  assert.deepEqual(
    env({ RATE_LIMIT_TRUSTED_IP_HEADER: " X-Forwarded-For ", RATE_LIMIT_TRUSTED_PROXY_HOPS: "2" })
      .clientIp,
    { header: "x-forwarded-for", hops: 2 },
  );
  for (const bad of ["a b", "x-real-ip, x-forwarded-for", "x:y"]) {
    assert.throws(() => env({ RATE_LIMIT_TRUSTED_IP_HEADER: bad }), /RATE_LIMIT_TRUSTED_IP_HEADER/);
  }
  for (const bad of ["0", "-1", "1.5", "many", "33"]) {
    assert.throws(
      () => env({ RATE_LIMIT_TRUSTED_PROXY_HOPS: bad }),
      /RATE_LIMIT_TRUSTED_PROXY_HOPS/,
    );
  }
});

/** Anything a client can put in a header value: addresses, garbage, huge strings, lists. */
const spoofedValue = fc.oneof(
  { arbitrary: fc.ipV4(), weight: 4 },
  { arbitrary: fc.ipV6(), weight: 4 },
  { arbitrary: fc.ipV4Extended(), weight: 2 },
  { arbitrary: fc.string({ maxLength: 60, unit: "binary" }), weight: 4 },
  {
    arbitrary: fc.constantFrom("", "unknown", "::1", "10.0.0.1:80", "[::1]", "1.2.3.4, 5.6.7.8"),
    weight: 2,
  },
  { arbitrary: fc.integer({ min: 1, max: 200 }).map((n) => "9.9.9.9,".repeat(n)), weight: 1 },
  { arbitrary: fc.constant("a".repeat(100_000)), weight: 1 },
);
// Header values cannot hold CR, LF or NUL; a client sends what Headers accepts.
const headerSafe = (s: string) =>
  s.replace(/[\r\n\0]/g, "").replace(/[^\t\x20-\x7e\x80-\xff]/g, "");
const spoofedHops = fc.array(spoofedValue.map(headerSafe), { maxLength: 40 });
const vouched = fc.oneof(fc.ipV4(), fc.ipV6());
const proxyAddr = fc.oneof(fc.ipV4(), fc.ipV6());
const bucketOf = (ip: string) => ipBucket(parseIp(ip)!);
const keyOf = (req: Request, policy: ClientIpPolicy, remote: string | null) =>
  ipBucket(clientIp(req, policy, remote));

Deno.test("x-forwarded-for with N trusted hops: the spoofed left part never changes the bucket", () => {
  fc.assert(
    fc.property(
      spoofedHops,
      vouched,
      fc.array(proxyAddr, { maxLength: 4 }),
      spoofedValue.map(headerSafe),
      (spoofed, client, proxies, realIp) => {
        // Each trusted proxy appends its peer: the client first, then the proxies before it.
        const xff = [...spoofed, client, ...proxies].join(", ");
        const req = new Request("http://x/", {
          headers: { "x-forwarded-for": xff, "x-real-ip": realIp, "cf-connecting-ip": realIp },
        });
        const policy = { header: "x-forwarded-for", hops: proxies.length + 1 };
        assert.equal(keyOf(req, policy, "10.1.2.3"), bucketOf(client));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("a single-valued trusted header: other spoofed headers never matter", () => {
  fc.assert(
    fc.property(spoofedHops, vouched, (spoofed, client) => {
      const junk = spoofed.join(",");
      const req = new Request("http://x/", {
        headers: {
          "cf-connecting-ip": client,
          "x-forwarded-for": junk,
          "x-real-ip": spoofed[0] ?? "",
          "x-client-ip": junk,
        },
      });
      const policy = { header: "cf-connecting-ip", hops: 1 };
      assert.equal(keyOf(req, policy, "10.1.2.3"), bucketOf(client));
    }),
    { numRuns: 300 },
  );
});

Deno.test("no trusted header configured: every spoofed header leaves the peer's bucket", () => {
  fc.assert(
    fc.property(spoofedHops, fc.option(proxyAddr), (spoofed, peer) => {
      const junk = spoofed.join(",");
      const req = new Request("http://x/", {
        headers: {
          "x-forwarded-for": junk,
          "x-real-ip": spoofed.at(-1) ?? "",
          "cf-connecting-ip": spoofed[0] ?? "",
          forwarded: `for=${spoofed[0] ?? ""}`,
        },
      });
      const expected = peer === null ? UNKNOWN_IP : bucketOf(peer);
      assert.equal(keyOf(req, { header: null, hops: 1 }, peer), expected);
    }),
    { numRuns: 300 },
  );
});

Deno.test("trusted header unusable (absent, garbage, repeated, too few hops): the peer, not a hop", () => {
  const peer = "10.9.8.7";
  const cases: [ClientIpPolicy, Record<string, string>][] = [
    [{ header: "cf-connecting-ip", hops: 1 }, {}],
    [{ header: "cf-connecting-ip", hops: 1 }, { "cf-connecting-ip": "garbage" }],
    [{ header: "cf-connecting-ip", hops: 1 }, { "cf-connecting-ip": "1.2.3.4, 5.6.7.8" }],
    [{ header: "cf-connecting-ip", hops: 1 }, { "cf-connecting-ip": "1.2.3.4:80" }],
    [{ header: "x-forwarded-for", hops: 1 }, { "x-forwarded-for": "1.2.3.4, nonsense" }],
    [{ header: "x-forwarded-for", hops: 1 }, { "x-forwarded-for": "1.2.3.4," }],
    [{ header: "x-forwarded-for", hops: 3 }, { "x-forwarded-for": "1.2.3.4, 5.6.7.8" }],
  ];
  for (const [policy, headers] of cases) {
    const req = new Request("http://x/", { headers });
    assert.equal(clientIp(req, policy, peer), peer, JSON.stringify(headers));
    assert.equal(clientIp(req, policy, null), UNKNOWN_IP);
    assert.equal(clientIp(req, policy, "not-an-ip"), UNKNOWN_IP);
  }
});
