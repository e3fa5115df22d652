/**
 * `webhook.deliver` input handling: header names and values (as classes, with
 * fast-check), hop-by-hop and proxy headers in every casing, and DNS failures,
 * through the real worker on real Postgres against a real loopback sink.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import {
  JobPayloadError,
  jobRegistry,
  jobRow,
  readEnv,
  runWorker,
  webhookDeliverJob,
  webhookPayload,
} from "../../../supabase/functions/_shared/mod.ts";
import { jobDefinitions } from "../../../supabase/functions/queue-worker/jobs.ts";
import { freshDatabase } from "../../_harness/database.ts";
import { serve } from "../../_harness/server.ts";

/** RFC 9110 tchar, written out independently of the module under test. */
const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "transfer-encoding",
  "host",
  "content-length",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "proxy-anything",
];

/** RFC 9110 field-value characters: HTAB, SP, VCHAR, obs-text. */
const valueCharOk = (c: string) => {
  const n = c.codePointAt(0)!;
  return n === 9 || (n >= 0x20 && n <= 0x7e) || (n >= 0x80 && n <= 0xff);
};

function casings(name: string): string[] {
  const title = name.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase());
  const alternating = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("");
  return [...new Set([name, name.toUpperCase(), title, alternating])];
}

/** The schema's verdict on one header. */
function headerIssues(headers: Record<string, string>) {
  const parsed = webhookPayload.safeParse({ url: "https://example.com/", headers });
  return parsed.success ? [] : parsed.error.issues;
}

const awkward = fc.constantFrom(
  "a",
  "Z",
  "0",
  "-",
  " ",
  "\t",
  "\r",
  "\n",
  "\0",
  "\x01",
  "\x1f",
  "\x7f",
  "\x80",
  "é",
  "ÿ",
  "Ā",
  "€",
  "😀",
  ":",
  '"',
  "(",
  "/",
  "~",
  "!",
);
const headerText = fc.oneof(
  fc.string({ unit: awkward, maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 12 }),
);

Deno.test("webhook headers property: whatever the schema accepts, fetch sends unchanged", () => {
  let accepted = 0;
  fc.assert(
    fc.property(fc.dictionary(headerText, headerText, { maxKeys: 6 }), (headers) => {
      if (headerIssues(headers).length > 0) return;
      accepted++;
      const sent = new Headers(headers); // must not throw: a throw here would burn every retry
      for (const [name, value] of Object.entries(headers)) {
        assert.equal(sent.get(name), value.replace(/^[\t ]+|[\t ]+$/g, ""), name);
      }
    }),
    { numRuns: 2_000 },
  );
  assert.ok(accepted > 100, `only ${accepted} accepted header sets were tried`);
});

Deno.test("webhook headers property: a name with any non-token character is refused", () => {
  const bad = fc.string({ unit: "binary", minLength: 1, maxLength: 1 })
    .filter((c) => !TCHAR.includes(c));
  const token = fc.string({ unit: fc.constantFrom(...TCHAR), maxLength: 10 });
  fc.assert(
    fc.property(token, bad, token, (before, c, after) => {
      const name = before + c + after;
      const issues = headerIssues({ [name]: "v" });
      assert.ok(issues.some((i) => i.path.join("/") === `headers/${name}`), JSON.stringify(name));
    }),
    { numRuns: 1_000 },
  );
  assert.ok(headerIssues({ "": "v" }).length > 0, "an empty name");
});

Deno.test("webhook headers property: a value with a control or non-Latin-1 character is refused", () => {
  const bad = fc.string({ unit: "binary", minLength: 1, maxLength: 1 })
    .filter((c) => !valueCharOk(c));
  const ok = fc.string({ unit: "binary", maxLength: 10 })
    .map((s) => [...s].filter(valueCharOk).join(""));
  fc.assert(
    fc.property(ok, bad, ok, (before, c, after) => {
      const issues = headerIssues({ "X-Test": before + c + after });
      assert.ok(issues.some((i) => i.path.join("/") === "headers/X-Test"), JSON.stringify(c));
    }),
    { numRuns: 1_000 },
  );
});

Deno.test("webhook headers property: valid names and values are accepted", () => {
  const name = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 40 })
    .filter((n) => !HOP_BY_HOP.includes(n.toLowerCase()) && !/^proxy-/i.test(n));
  const value = fc.string({ unit: "binary", maxLength: 60 })
    .map((s) => [...s].filter(valueCharOk).join(""));
  fc.assert(
    fc.property(name, value, (n, v) => {
      assert.deepEqual(headerIssues({ [n]: v }), [], `${n}: ${JSON.stringify(v)}`);
    }),
    { numRuns: 1_000 },
  );
});

Deno.test("webhook headers property: hop-by-hop and proxy headers are refused in any casing", () => {
  fc.assert(
    fc.property(fc.mixedCase(fc.constantFrom(...HOP_BY_HOP)), (name) => {
      const issues = headerIssues({ "X-Fine": "1", [name]: "x" });
      assert.equal(issues.length, 1, name);
      assert.deepEqual(issues[0]!.path, ["headers", name]);
      assert.match(issues[0]!.message, /hop-by-hop or proxy header/);
    }),
    { numRuns: 500 },
  );
});

/** Bad header sets, each as the caller would write it. NUL cannot be stored in jsonb. */
const INVALID: [string, Record<string, string>, string][] = [
  ["CRLF injection", { "X-A": "ok\r\nX-Injected: 1" }, "X-A"],
  ["bare LF", { "X-A": "a\nb" }, "X-A"],
  ["bare CR", { "X-A": "a\rb" }, "X-A"],
  ["control character", { "X-A": "a\x01b" }, "X-A"],
  ["DEL", { "X-A": "a\x7fb" }, "X-A"],
  ["not a ByteString", { "X-A": "price €" }, "X-A"],
  ["emoji", { "X-A": "😀" }, "X-A"],
  ["space in name", { "Bad Name": "v" }, "Bad Name"],
  ["colon in name", { "X:Y": "v" }, "X:Y"],
  ["slash in name", { "X/Y": "v" }, "X/Y"],
  ["non-ASCII name", { "é": "v" }, "é"],
  ["empty name", { "": "v" }, ""],
  ["same header twice", { "X-Sig": "a", "x-sig": "b" }, "x-sig"],
  ["value too long", { "X-A": "v".repeat(8_193) }, "X-A"],
  ...HOP_BY_HOP.flatMap((h) =>
    casings(h).map((name): [string, Record<string, string>, string] => [
      `hop-by-hop ${name}`,
      { "X-Fine": "1", [name]: "x" },
      name,
    ])
  ),
];

Deno.test("webhook.deliver: invalid and hop-by-hop headers are refused at enqueue and dead-lettered at once", async () => {
  const webhook = webhookDeliverJob({ allowHosts: ["127.0.0.1"] });
  await using db = await freshDatabase();
  const received: Request[] = [];
  await using sink = serve((req) => {
    received.push(req);
    return new Response(null, { status: 204 });
  });
  const url = `${sink.url}/hook`;
  const pointer = (name: string) => "/headers/" + name.replaceAll("~", "~0").replaceAll("/", "~1");
  for (const [label, headers, name] of [...INVALID, ["NUL", { "X-A": "a\0b" }, "X-A"] as const]) {
    assert.throws(
      () => jobRow(webhook, { url, headers }),
      (e) => e instanceof JobPayloadError && e.errors!.some((f) => f.pointer === pointer(name)),
      label,
    );
  }
  // Rows written by SQL (triggers, other services) skip that check: the worker catches them.
  for (const [label, headers] of INVALID) {
    await db.sql`select queue.enqueue('webhook.deliver',
      ${db.sql.json({ url, headers, body: { label } })}, max_attempts => 8)`;
  }
  const summary = await runWorker({ sql: db.sql, registry: jobRegistry([webhook]) });
  assert.equal(summary.deadLettered, INVALID.length);
  assert.equal(summary.retried, 0);
  const dead = await db.sql`select payload->'body'->>'label' as label, reason, attempts, last_error
    from queue.dead_letters`;
  assert.equal(dead.length, INVALID.length);
  for (const [label, , name] of INVALID) {
    const row = dead.find((d) => d.label === label);
    assert.equal(row?.reason, "invalid_payload", label);
    assert.equal(row?.attempts, 1, label);
    assert.ok(row?.last_error.includes(`/headers/${name}`), `${label}: ${row?.last_error}`);
  }
  assert.equal(received.length, 0, "nothing reached the sink");
});

Deno.test("webhook.deliver: valid headers reach a real loopback sink as given", async () => {
  const webhook = webhookDeliverJob({ allowHosts: ["127.0.0.1"] });
  await using db = await freshDatabase();
  const received: { headers: Headers; body: string }[] = [];
  await using sink = serve(async (req) => {
    received.push({ headers: req.headers, body: await req.text() });
    return new Response(null, { status: 204 });
  });
  const headers = {
    "X-Signature": "v1,abc/def+ghi=",
    "authorization": "Bearer token-123",
    "X-MIXED-case": "  padded\tinside  ",
    "X-Latin1": "café ÿ",
    "X-Empty": "",
    "Content-Type": "application/cloudevents+json",
    "X-Tilde~Name": "x",
  };
  const body = { event: "ping" };
  await db.sql`select queue.enqueue('webhook.deliver',
    ${db.sql.json({ url: `${sink.url}/hook`, headers, body })})`;
  const summary = await runWorker({ sql: db.sql, registry: jobRegistry([webhook]) });
  assert.equal(summary.completed, 1);
  assert.equal(received.length, 1);
  const got = received[0]!;
  for (const [name, value] of Object.entries(headers)) {
    assert.equal(got.headers.get(name), value.trim(), name);
  }
  assert.equal(got.body, JSON.stringify(body));
  // Connection-level headers are the client's own: the real host and length, nothing of ours.
  assert.equal(got.headers.get("host"), new URL(sink.url).host);
  assert.equal(got.headers.get("content-length"), String(JSON.stringify(body).length));
  const ours = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
  const clientDefaults = ["host", "content-length", "accept", "accept-encoding", "accept-language"];
  const extra = [...got.headers.keys()].filter((h) => !ours.has(h) && h !== "user-agent");
  assert.deepEqual(extra.filter((h) => !clientDefaults.includes(h)), []);
});

Deno.test("webhook.deliver: DNS failures and time-outs are retried; private answers are ssrf_blocked", async () => {
  const hang = new Promise<string[]>(() => {});
  const answers: Record<string, () => Promise<string[]>> = {
    "nx.example": () => Promise.reject(new Deno.errors.NotFound("no records found for Query")),
    "gai.example": () => Promise.reject(new TypeError("failed to lookup address information")),
    "hang.example": () => hang,
    "weird.example": () => {
      throw 42;
    },
    "empty.example": () => Promise.resolve([]),
    "inside.example": () => Promise.resolve(["93.184.215.14", "::ffff:10.0.0.1"]),
    "meta.example": () => Promise.resolve(["64:ff9b::a9fe:a9fe"]),
  };
  let lookups = 0;
  const webhook = webhookDeliverJob({
    resolveTimeoutMs: 50,
    resolve: (host) => {
      lookups++;
      return answers[host]!();
    },
    fetch: () => Promise.reject(new Error("no request may be sent in this test")),
  });
  const registry = jobRegistry([webhook]);
  await using db = await freshDatabase();
  const enqueue = (host: string, maxAttempts: number) =>
    db.sql`select queue.enqueue('webhook.deliver', ${db.sql.json({ url: `https://${host}/h` })},
      max_attempts => ${maxAttempts})`;

  // One attempt each: a lookup failure ends as attempts_exhausted, never ssrf_blocked.
  for (const host of Object.keys(answers)) await enqueue(host, 1);
  const s = await runWorker({ sql: db.sql, registry });
  assert.equal(s.deadLettered, Object.keys(answers).length);
  const dead = await db.sql`select split_part(payload->>'url', '/', 3) as host, reason, last_error
    from queue.dead_letters order by id`;
  const reasons = Object.fromEntries(dead.map((d) => [d.host, d.reason]));
  assert.deepEqual(reasons, {
    "nx.example": "attempts_exhausted",
    "gai.example": "attempts_exhausted",
    "hang.example": "attempts_exhausted",
    "weird.example": "attempts_exhausted",
    "empty.example": "attempts_exhausted",
    "inside.example": "ssrf_blocked",
    "meta.example": "ssrf_blocked",
  });
  for (const d of dead.filter((d) => d.reason === "attempts_exhausted")) {
    assert.match(d.last_error, /^DnsLookupError: /, d.host);
  }
  assert.match(dead.find((d) => d.host === "hang.example")!.last_error, /timed out after 50 ms/);
  assert.equal(lookups, Object.keys(answers).length);

  // With attempts left, a failed lookup is scheduled again and keeps its job.
  await db.sql`delete from queue.dead_letters`;
  await enqueue("nx.example", 8);
  const again = await runWorker({ sql: db.sql, registry, maxJobs: 1 });
  assert.deepEqual([again.retried, again.deadLettered], [1, 0]);
  const [job] = await db.sql`select attempts, errors from queue.jobs`;
  assert.equal(job?.attempts, 1);
  assert.match(job?.errors[0].error, /DnsLookupError/);
});

Deno.test("webhook.deliver: a job timing out stops its DNS lookup", async () => {
  let lookup: AbortSignal | undefined;
  const webhook = webhookDeliverJob({
    timeoutMs: 50,
    resolveTimeoutMs: 60_000,
    resolve: (_, signal) => {
      lookup = signal;
      return new Promise<string[]>(() => {});
    },
  });
  await using db = await freshDatabase();
  await db.sql`select queue.enqueue('webhook.deliver',
    ${db.sql.json({ url: "https://slow.example/h" })}, max_attempts => 1)`;
  const s = await runWorker({ sql: db.sql, registry: jobRegistry([webhook]) });
  assert.equal(s.deadLettered, 1);
  assert.equal(lookup?.aborted, true, "the resolver was told to stop with the job");
  const [dead] = await db.sql`select reason from queue.dead_letters`;
  assert.equal(dead?.reason, "attempts_exhausted");
});

Deno.test("webhook.deliver: QUEUE_WEBHOOK_ALLOW_HOSTS lets the queue-worker's job reach a private host", async () => {
  await using db = await freshDatabase();
  let hits = 0;
  await using sink = serve(() => {
    hits++;
    return new Response(null, { status: 204 });
  });
  const jobsWith = (allow: string | undefined) => {
    const env = readEnv((k) => (k === "QUEUE_WEBHOOK_ALLOW_HOSTS" ? allow : undefined));
    return jobRegistry(jobDefinitions({ allowHosts: env.webhookAllowHosts }));
  };
  const deliver = async (registry: ReturnType<typeof jobsWith>, url: string) => {
    await db.sql`select queue.enqueue('webhook.deliver', ${
      db.sql.json({ url })
    }, max_attempts => 1)`;
    return await runWorker({ sql: db.sql, registry });
  };
  const port = new URL(sink.url).port;
  assert.equal((await deliver(jobsWith(" example.org , 127.0.0.1 "), sink.url)).completed, 1);
  assert.equal((await deliver(jobsWith("0x7f.1"), `http://2130706433:${port}/`)).completed, 1);
  assert.equal(hits, 2);
  // Unset, or naming another host: refused before any request.
  for (const allow of [undefined, "", "127.0.0.2", "localhost"]) {
    assert.equal((await deliver(jobsWith(allow), sink.url)).deadLettered, 1, String(allow));
  }
  assert.equal(hits, 2);
  const reasons = await db.sql`select distinct reason from queue.dead_letters`;
  assert.deepEqual(reasons.map((r) => r.reason), ["ssrf_blocked"]);
});
