/**
 * The SSRF guard of `webhook.deliver`, as the job uses it: URLs go through
 * `new URL()` first (which normalises decimal, hex, octal and short IPv4 forms
 * and compresses IPv6), names through an injected resolver. A table of every
 * address form, plus properties over the IPv4 space and its IPv6 embeddings.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import {
  assertPublicUrl,
  DnsLookupError,
  isPrivateAddress,
  PermanentJobError,
} from "../../../supabase/functions/_shared/mod.ts";

/** Outcome of the guard for `url`: "blocked", "allowed", or the error class name. */
async function verdict(url: string, resolved: string[] = ["93.184.215.14"]): Promise<string> {
  try {
    await assertPublicUrl(new URL(url), { resolve: () => Promise.resolve(resolved) });
    return "allowed";
  } catch (error) {
    if (error instanceof PermanentJobError && error.reason === "ssrf_blocked") return "blocked";
    return (error as Error).name;
  }
}

// Teredo: 2001:0:<server v4>:<flags>:<port>:<client v4 XOR ffff:ffff>.
// 4136:e378 = 65.54.227.120 (public server); f7f7:f7f7 = ~8.8.8.8; f5ff:fffe = ~10.0.0.1.
const BLOCKED = [
  // IPv4 in every form the URL parser accepts
  "http://127.0.0.1/",
  "http://2130706433/",
  "http://0x7f000001/",
  "http://0177.0.0.1/",
  "http://127.1/",
  "http://0x7f.1/",
  "http://127.0.0.1./",
  "http://127.255.255.254/",
  "http://0.0.0.0/",
  "http://0/",
  "http://0.1.2.3/",
  "http://10.0.0.1/",
  "http://012.0.0.1/",
  "http://167772161/",
  "http://172.16.0.1/",
  "http://172.31.255.255/",
  "http://192.168.1.1/",
  "http://169.254.169.254/latest/meta-data",
  "http://0xa9fea9fe/",
  "http://100.64.0.1/",
  "http://100.127.255.255/",
  "http://192.0.0.1/",
  "http://192.0.0.255/",
  "http://192.0.2.1/",
  "http://192.88.99.1/",
  "http://198.18.0.1/",
  "http://198.19.255.255/",
  "http://198.51.100.7/",
  "http://203.0.113.9/",
  "http://224.0.0.1/",
  "http://239.255.255.250/",
  "http://240.0.0.1/",
  "http://255.255.255.255/",
  // local names
  "http://localhost/",
  "http://localhost./",
  "http://LOCALHOST/",
  "http://LocalHost.:8080/",
  "http://a.b.localhost/",
  "http://foo.localhost./",
  "http://metadata.google.internal/",
  // IPv6 loopback, unspecified, link-local, site-local, unique-local, multicast, special
  "http://[::1]/",
  "http://[0:0:0:0:0:0:0:1]/",
  "http://[::]/",
  "http://[fe80::1]/",
  "http://[FE80::abcd:1]/",
  "http://[febf:ffff::1]/",
  "http://[fec0::1]/",
  "http://[fc00::1]/",
  "http://[fd12:3456::1]/",
  "http://[ff02::1]/",
  "http://[ff05::1:3]/",
  "http://[100::1]/",
  "http://[2001:db8::1]/",
  "http://[3fff::1]/",
  "http://[2001:2::1]/",
  "http://[2001:10::1]/",
  // IPv6 forms that embed a private IPv4 address
  "http://[::ffff:127.0.0.1]/",
  "http://[0:0:0:0:0:ffff:7f00:1]/",
  "http://[::ffff:169.254.169.254]/",
  "http://[::ffff:10.0.0.1]/",
  "http://[::ffff:0.0.0.0]/",
  "http://[::a9fe:a9fe]/",
  "http://[::127.0.0.1]/",
  "http://[::ffff:0:10.0.0.1]/",
  "http://[::ffff:0:7f00:1]/",
  "http://[64:ff9b::a9fe:a9fe]/",
  "http://[64:ff9b::10.0.0.1]/",
  "http://[64:ff9b:1::1]/",
  "http://[64:ff9b:1:ffff::808:808]/",
  "http://[2002:a9fe:a9fe::1]/",
  "http://[2002:7f00:1::]/",
  "http://[2002:c0a8:101:1::1]/",
  "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
  "http://[2001:0:a00:1:8000:63bf:f7f7:f7f7]/",
  "http://[::5efe:10.1.2.3]/",
  "http://[::5efe:8.8.8.8]/",
  "http://[2600:1f18::5efe:a01:203]/",
  "http://[2600:1f18::200:5efe:a9fe:a9fe]/",
  // not http(s), or credentials that could confuse a proxy
  "ftp://example.com/",
  "http://user:pw@example.com/",
];

const ALLOWED = [
  "http://8.8.8.8/",
  "https://1.1.1.1/",
  "http://134744072/",
  "http://0x8.0x8.0x8.0x8/",
  "http://11.0.0.1/",
  "http://126.255.255.255/",
  "http://128.0.0.1/",
  "http://169.253.255.255/",
  "http://169.255.0.1/",
  "http://172.15.255.255/",
  "http://172.32.0.0/",
  "http://100.63.255.255/",
  "http://100.128.0.0/",
  "http://192.0.1.1/",
  "http://192.0.3.1/",
  "http://192.167.255.255/",
  "http://192.169.0.1/",
  "http://198.17.255.255/",
  "http://198.20.0.1/",
  "http://223.255.255.255/",
  "http://[2606:4700::1111]/",
  "http://[2001:4860:4860::8888]/",
  "http://[::ffff:8.8.8.8]/",
  "http://[::ffff:0:8.8.8.8]/",
  // IPv4-compatible is deprecated, but judged like the address it embeds.
  "http://[::8.8.8.8]/",
  "http://[64:ff9b::808:808]/",
  "http://[2002:808:808::1]/",
  "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",
  "http://[2600:1f18::5efe:808:808]/",
  "http://localhost.example.com/",
  "http://internal.example.com/",
  "https://example.com/hook",
];

Deno.test("ssrf: a table of every address form, through new URL() as the job does", async () => {
  const wrong: string[] = [];
  for (const url of BLOCKED) {
    const got = await verdict(url);
    if (got !== "blocked") wrong.push(`${url}: expected blocked, got ${got}`);
  }
  for (const url of ALLOWED) {
    const got = await verdict(url);
    if (got !== "allowed") wrong.push(`${url}: expected allowed, got ${got}`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("ssrf: a name resolving to any blocked form is blocked, even among public ones", async () => {
  const literals = BLOCKED.map((u) => new URL(u).hostname)
    .filter((h) => /^[\d.]+$/.test(h) || h.startsWith("["));
  assert.ok(literals.length > 50);
  for (const host of literals) {
    const bare = host.replace(/^\[|\]$/g, "");
    assert.equal(await verdict("https://hook.example/", [bare]), "blocked", bare);
    assert.equal(
      await verdict("https://hook.example/", ["93.184.215.14", bare, "2606:4700::1111"]),
      "blocked",
      bare,
    );
  }
  // Resolvers answer with zone ids and full forms too.
  for (const answer of ["fe80::1%eth0", "0:0:0:0:0:ffff:a9fe:a9fe", "::FFFF:7F00:1", "junk"]) {
    assert.equal(await verdict("https://hook.example/", [answer]), "blocked", answer);
  }
  assert.equal(
    await verdict("https://hook.example/", ["93.184.215.14", "2606:4700::1"]),
    "allowed",
  );
});

// ---- properties ---------------------------------------------------------------------------

/** IANA special-purpose IPv4 ranges that are not globally reachable: the spec, written out. */
const PRIVATE_V4: [number, number][] = ([
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const).map(([ip, bits]) => [toInt(ip), bits]);

function toInt(ip: string): number {
  return ip.split(".").reduce((n, p) => n * 256 + Number(p), 0);
}
function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}
function hex(n: number): string {
  return `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}
function inRanges(n: number): boolean {
  return PRIVATE_V4.some(([base, bits]) =>
    Math.floor(n / 2 ** (32 - bits)) === base / 2 ** (32 - bits)
  );
}

/** Any IPv4 address, half of them drawn from inside the private ranges. */
const anyV4 = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  fc.constantFrom(...PRIVATE_V4).chain(([base, bits]) =>
    fc.integer({ min: 0, max: 2 ** (32 - bits) - 1 }).map((o) => base + o)
  ),
);
const publicV4 = fc.integer({ min: 0, max: 2 ** 32 - 1 }).filter((n) => !inRanges(n));
const group = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
/** Global unicast prefixes allocated to RIRs (2400::/6 .. 2c00::/12), no special meaning. */
const globalPrefix = fc.tuple(fc.integer({ min: 0x2400, max: 0x2c0f }), group, group, group)
  .map(([g0, ...rest]) => [g0.toString(16), ...rest].join(":"));

/** Every IPv6 form that carries `v4`, in a routable or well-known prefix. */
const embeddings = (v4: number) =>
  fc.record({ server: publicV4, prefix: globalPrefix, subnet: group, iid: group }).map(
    ({ server, prefix, subnet, iid }) => [
      `::ffff:${dotted(v4)}`,
      `::ffff:${hex(v4)}`,
      `0:0:0:0:0:ffff:${hex(v4)}`,
      `::${dotted(v4)}`,
      `::ffff:0:${dotted(v4)}`,
      `64:ff9b::${dotted(v4)}`,
      `64:ff9b::${hex(v4)}`,
      `2002:${hex(v4)}:${subnet}::${iid}`,
      `2001:0:${hex(server)}:8000:${iid}:${hex((~v4) >>> 0)}`,
      `${prefix}:0:5efe:${hex(v4)}`,
      `${prefix}:200:5efe:${dotted(v4)}`,
    ],
  );

Deno.test("ssrf property: an IPv4 address is blocked iff it is in a special-purpose range", () => {
  fc.assert(
    fc.property(anyV4, (v4) => {
      assert.equal(isPrivateAddress(dotted(v4)), inRanges(v4), dotted(v4));
    }),
    { numRuns: 5_000 },
  );
});

Deno.test("ssrf property: every IPv6 embedding of v4 is blocked iff v4 is", async () => {
  await fc.assert(
    fc.asyncProperty(
      anyV4.chain((v4) => embeddings(v4).map((forms) => ({ v4, forms }))),
      async ({ v4, forms }) => {
        const expected = inRanges(v4) ? "blocked" : "allowed";
        for (const form of forms) {
          assert.equal(isPrivateAddress(form), expected === "blocked", `${form} (${dotted(v4)})`);
          // The same address as the job sees it: serialised by the URL parser.
          assert.equal(await verdict(`http://[${form}]/`), expected, form);
          // And as a DNS answer for a name.
          assert.equal(await verdict("https://hook.example/", [form]), expected, form);
        }
      },
    ),
    { numRuns: 1_000 },
  );
});

Deno.test("ssrf property: reserved-space and local-use forms are blocked whatever they carry", () => {
  fc.assert(
    fc.property(anyV4, group, (v4, g) => {
      for (
        const form of [
          `::5efe:${dotted(v4)}`,
          `64:ff9b:1:${g}::${hex(v4)}`,
          `fe80::5efe:${hex(v4)}`,
        ]
      ) {
        assert.ok(isPrivateAddress(form), form);
      }
    }),
  );
});

Deno.test("ssrf property: random public IPv6 addresses stay allowed", () => {
  fc.assert(
    fc.property(globalPrefix, group, group, group, group, (prefix, a, b, c, d) => {
      fc.pre(!(b === "5efe" && (parseInt(a, 16) & 0xfcff) === 0)); // not an ISATAP identifier
      const ip = `${prefix}:${a}:${b}:${c}:${d}`;
      assert.equal(isPrivateAddress(ip), false, ip);
      assert.equal(isPrivateAddress(new URL(`http://[${ip}]/`).hostname), false, ip);
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("ssrf property: anything that is not an address counts as private", () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
      fc.pre(!text.includes(":") && !(v4 && v4.slice(1).every((p) => Number(p) <= 255)));
      assert.ok(isPrivateAddress(text), text);
    }),
  );
});

// ---- allow-listing ------------------------------------------------------------------------

Deno.test("ssrf: allowHosts exempts exactly the hosts it names, in any spelling", async () => {
  const never = () => Promise.reject(new Error("allowed hosts are not resolved"));
  const cases: [string[], string, boolean][] = [
    [["127.0.0.1"], "http://127.0.0.1:9/", true],
    [["127.0.0.1"], "http://2130706433:9/", true],
    [["0x7f.1"], "http://127.0.0.1/", true],
    [["localhost"], "http://LOCALHOST./", true],
    [["LocalHost."], "http://localhost/", true],
    [["::1"], "http://[::1]/", true],
    [["[::1]"], "http://[0:0:0:0:0:0:0:1]/", true],
    [["::ffff:10.0.0.1"], "http://[::ffff:a00:1]/", true],
    [[" hooks.internal "], "http://hooks.internal/", true],
    [["127.0.0.1"], "http://127.0.0.2/", false],
    [["127.0.0.1"], "http://[::ffff:127.0.0.1]/", false],
    [["localhost"], "http://a.localhost/", false],
    [["x@127.0.0.1"], "http://127.0.0.1/", false],
    [["127.0.0.1/"], "http://127.0.0.1/", false],
    [[], "http://127.0.0.1/", false],
  ];
  for (const [allowHosts, url, allowed] of cases) {
    const run = assertPublicUrl(new URL(url), { allowHosts, resolve: never });
    if (allowed) await run;
    else await assert.rejects(run, (e) => e instanceof PermanentJobError, `${allowHosts} ${url}`);
  }
  // An allowed name that is not private still skips DNS: the operator vouched for it.
  await assertPublicUrl(new URL("https://intranet.corp/"), {
    allowHosts: ["intranet.corp"],
    resolve: never,
  });
  // Allow-listing is not a scheme bypass.
  await assert.rejects(
    assertPublicUrl(new URL("ftp://127.0.0.1/"), { allowHosts: ["127.0.0.1"] }),
    /only http/,
  );
});

// ---- DNS failures are retryable, never ssrf_blocked ----------------------------------------

Deno.test("ssrf: lookup failures of every kind are a retryable DnsLookupError", async () => {
  const url = new URL("https://hook.example/");
  const failures: [string, () => Promise<string[]>][] = [
    ["NXDOMAIN", () => Promise.reject(new Deno.errors.NotFound("no records found for Query"))],
    ["getaddrinfo", () => Promise.reject(new TypeError("failed to lookup address information"))],
    ["no addresses", () => Promise.resolve([])],
    ["sync throw", () => {
      throw new Error("resolver crashed");
    }],
    ["not a list", () => Promise.resolve("10.0.0.1" as unknown as string[])],
    ["not strings", () => Promise.resolve([167772161] as unknown as string[])],
    [
      "a PermanentJobError",
      () => Promise.reject(new PermanentJobError("x", { reason: "ssrf_blocked" })),
    ],
  ];
  for (const [name, resolve] of failures) {
    await assert.rejects(
      assertPublicUrl(url, { resolve }),
      (e) => e instanceof DnsLookupError && !(e instanceof PermanentJobError),
      name,
    );
  }
});

Deno.test("ssrf property: a resolver that throws or rejects with any value is retryable", async () => {
  await fc.assert(
    fc.asyncProperty(fc.anything(), fc.boolean(), async (thrown, sync) => {
      const resolve = () => {
        if (sync) throw thrown;
        return Promise.reject(thrown);
      };
      const error = await assertPublicUrl(new URL("https://hook.example/"), { resolve }).then(
        () => null,
        (e) => e,
      );
      assert.ok(error instanceof DnsLookupError, String(error));
    }),
    { numRuns: 300 },
  );
});

Deno.test("ssrf: a resolver that never answers gives up at the deadline, aborting it", async () => {
  let seen: AbortSignal | undefined;
  const hang = (_: string, signal: AbortSignal) => {
    seen = signal;
    return new Promise<string[]>(() => {});
  };
  await assert.rejects(
    assertPublicUrl(new URL("https://slow.example/"), { resolve: hang, resolveTimeoutMs: 20 }),
    (e) => e instanceof DnsLookupError && /timed out after 20 ms/.test(e.message),
  );
  assert.equal(seen?.aborted, true, "the resolver was told to stop");
});

Deno.test("ssrf: a resolver that never answers is abandoned when the job's signal aborts", async () => {
  const job = new AbortController();
  let called!: () => void;
  const started = new Promise<void>((r) => (called = r));
  const hang = () => {
    called();
    return new Promise<string[]>(() => {});
  };
  const run = assertPublicUrl(
    new URL("https://slow.example/"),
    { resolve: hang, resolveTimeoutMs: 600_000 },
    job.signal,
  );
  await started;
  job.abort(new Error("job timed out"));
  await assert.rejects(run, (e) => e instanceof DnsLookupError && /abandoned/.test(e.message));
  // Already aborted before the lookup: no call, same answer.
  await assert.rejects(
    assertPublicUrl(new URL("https://slow.example/"), { resolve: hang }, job.signal),
    DnsLookupError,
  );
});

Deno.test("ssrf: the default resolver treats an unknown name as retryable, not blocked", async () => {
  // RFC 6761: .invalid never resolves. Without network the lookup fails otherwise; both retry.
  await assert.rejects(
    assertPublicUrl(new URL("https://no-such-host.invalid/"), { resolveTimeoutMs: 3_000 }),
    DnsLookupError,
  );
});
