/**
 * Rate limiting end to end: two processes racing on one key, the pipeline's
 * 429 with IETF headers over real HTTP, and the store-down policies.
 */
import assert from "node:assert/strict";
import postgres from "npm:postgres@3";
import { z } from "npm:zod@4";
import {
  action,
  createDatabase,
  createRateLimiter,
  defineFunction,
  rateLimit,
  rateLimitHeaders,
  rateLimitKey,
  type RateLimitRule,
  readEnv,
} from "../../supabase/functions/_shared/mod.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { serve } from "../_harness/server.ts";

const CHILD = new URL("./rate_limit_child.ts", import.meta.url).pathname;

async function child(url: string, key: string, limit: number, n: number): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CHILD, url, key, String(limit), String(n)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(text.trim().split("\n").at(-1)!).allowed;
}

Deno.test("rate limit: two processes, 2 x 60 concurrent requests, limit 25 -> exactly 25 admitted", async () => {
  await using db = await freshDatabase();
  const [a, b] = await Promise.all([
    child(db.url, "shared", 25, 60),
    child(db.url, "shared", 25, 60),
  ]);
  assert.equal(a + b, 25);
  assert.ok(a > 0 || b > 0);
  // And the store agrees: the next decision is refused with a positive retry.
  const d = await rateLimit({ name: "concurrency", limit: 25, periodSeconds: 3600 }, "shared", {
    sql: db.sql,
  });
  assert.equal(d.allowed, false);
  assert.ok(d.retryAfterSeconds >= 1);
});

Deno.test("rateLimitHeaders: IETF structured fields; Retry-After only when refused", () => {
  const rule: RateLimitRule = { name: "per-user", limit: 100, periodSeconds: 60 };
  const ok = rateLimitHeaders(
    { allowed: true, limit: 100, remaining: 42, resetSeconds: 17, retryAfterSeconds: 0 },
    rule,
  );
  assert.deepEqual(ok, {
    "ratelimit-policy": '"per-user";q=100;w=60',
    "ratelimit": '"per-user";r=42;t=17',
  });
  const refused = rateLimitHeaders(
    { allowed: false, limit: 100, remaining: 0, resetSeconds: 60, retryAfterSeconds: 1 },
    { ...rule, name: 'we"ird\\' },
  );
  assert.equal(refused["ratelimit-policy"], '"we\\"ird\\\\";q=100;w=60');
  assert.equal(refused["retry-after"], "1");
});

Deno.test("rateLimitKey: user id, then API key name, then client IP (IPv6 by /64)", () => {
  const none = { mode: "none", keyName: null, sub: null } as const;
  const base = { role: null, email: null, claims: null, token: null };
  const user = { ...base, mode: "user", keyName: null, sub: "u1" } as const;
  const key = { ...base, mode: "publishable", keyName: "default", sub: null } as const;
  const clientIp = "203.0.113.9";
  assert.equal(rateLimitKey({ auth: user, clientIp }), "user:u1");
  assert.equal(rateLimitKey({ auth: key, clientIp }), "key:publishable:default");
  assert.equal(rateLimitKey({ auth: user, clientIp }, "ip"), "ip:203.0.113.9");
  assert.equal(rateLimitKey({ auth: { ...base, ...none }, clientIp }, "user"), "ip:203.0.113.9");
  assert.equal(rateLimitKey({ auth: { ...base, ...none }, clientIp: "unknown" }), "ip:unknown");
  assert.equal(
    rateLimitKey({ auth: { ...base, ...none }, clientIp: "2001:db8:1:2:3:4:5:6" }),
    "ip:2001:db8:1:2::/64",
  );
});

Deno.test("pipeline: per-action limit over HTTP, 429 problem+json with headers exposed to CORS", async () => {
  await using db = await freshDatabase();
  const ORIGIN = "https://app.example.com";
  const env = readEnv((k) =>
    ({
      SUPABASE_DB_URL: db.url,
      ALLOWED_ORIGINS: ORIGIN,
      // The test plays the platform's proxy: it overwrites the header per request.
      RATE_LIMIT_TRUSTED_IP_HEADER: "x-forwarded-for",
    } as Record<
      string,
      string
    >)[k]
  );
  const database = createDatabase(env.dbUrl);
  const fn = defineFunction({
    name: "limited",
    auth: "none",
    actions: {
      ping: action({
        input: z.object({}).optional(),
        rateLimit: { limit: 2, periodSeconds: 60, key: "ip" },
        handler: () => "pong",
      }),
    },
  }, { env, db: database, rateLimiter: createRateLimiter(database), log: silent });
  await using server = serve(fn.fetch);
  const ping = (ip: string) =>
    fetch(`${server.url}/functions/v1/limited`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: ORIGIN, "x-forwarded-for": ip },
      body: JSON.stringify({ action: "ping" }),
    });
  try {
    const first = await ping("198.51.100.1");
    assert.equal(first.status, 200);
    await first.body?.cancel();
    assert.equal(first.headers.get("ratelimit-policy"), '"ping";q=2;w=60');
    assert.equal(first.headers.get("ratelimit"), '"ping";r=1;t=30');
    await (await ping("198.51.100.1")).body?.cancel();
    const refused = await ping("198.51.100.1");
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.equal(refused.headers.get("retry-after"), "30");
    assert.equal(refused.headers.get("ratelimit"), '"ping";r=0;t=60');
    const exposed = refused.headers.get("access-control-expose-headers") ?? "";
    for (const h of ["Retry-After", "RateLimit", "RateLimit-Policy"]) {
      assert.ok(exposed.includes(h));
    }
    const body = await refused.json();
    assert.equal(body.code, "rate_limited");
    assert.equal(body.status, 429);
    // Another client IP has its own quota.
    const other = await ping("198.51.100.2");
    assert.equal(other.status, 200);
    await other.body?.cancel();
  } finally {
    await database.close();
  }
});

Deno.test("pipeline over HTTP: spoofed X-Forwarded-For / X-Real-IP never buy a fresh bucket", async (t) => {
  await using db = await freshDatabase();
  const database = createDatabase(db.url);
  await using _pool = { [Symbol.asyncDispose]: () => database.close() };
  const start = (vars: Record<string, string>) => {
    const env = readEnv((k) => ({ SUPABASE_DB_URL: db.url, ...vars })[k]);
    return defineFunction({
      name: "limited",
      auth: "none",
      actions: {
        ping: action({
          input: z.object({}).optional(),
          rateLimit: { limit: 2, periodSeconds: 60, key: "ip", name: crypto.randomUUID() },
          handler: () => "pong",
        }),
      },
    }, { env, db: database, rateLimiter: createRateLimiter(database), log: silent });
  };
  const statuses = async (url: string, headers: (i: number) => Record<string, string>) => {
    const out: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${url}/functions/v1/limited`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers(i) },
        body: JSON.stringify({ action: "ping" }),
      });
      await res.body?.cancel();
      out.push(res.status);
    }
    return out;
  };

  await t.step("default (no trusted header): keyed on the peer address", async () => {
    await using server = serve(start({}).fetch);
    const got = await statuses(server.url, (i) => ({
      "x-forwarded-for": `203.0.113.${i}, 198.51.100.${i}`,
      "x-real-ip": `192.0.2.${i}`,
      "cf-connecting-ip": `192.0.2.${100 + i}`,
    }));
    assert.deepEqual(got, [200, 200, 429, 429, 429]);
  });

  await t.step("trusted x-forwarded-for, 1 hop: only the right-most hop counts", async () => {
    await using server = serve(start({ RATE_LIMIT_TRUSTED_IP_HEADER: "x-forwarded-for" }).fetch);
    const got = await statuses(server.url, (i) => ({
      "x-forwarded-for": `203.0.113.${i}, garbage-${i}, 2001:db8::${i}, 198.51.100.77`,
      "x-real-ip": `192.0.2.${i}`,
    }));
    assert.deepEqual(got, [200, 200, 429, 429, 429]);
  });
});

const silent = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silent;
  },
  enabled: () => false,
};

Deno.test("store down: fail-open admits with a warning, fail-closed refuses (503 in the pipeline)", async () => {
  const sql = postgres(`postgresql://postgres:postgres@127.0.0.1:${freePort()}/postgres`, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  const warnings: string[] = [];
  const log = { warn: (msg: string) => void warnings.push(msg) };
  try {
    const rule: RateLimitRule = { name: "r", limit: 1, periodSeconds: 60 };
    const open = await rateLimit(rule, "k", { sql, log });
    assert.equal(open.allowed, true);
    assert.equal(open.degraded, "open");
    const closed = await rateLimit({ ...rule, onStoreError: "closed" }, "k", { sql, log });
    assert.equal(closed.allowed, false);
    assert.equal(closed.degraded, "closed");
    assert.ok(closed.retryAfterSeconds >= 1);
    assert.equal(warnings.length, 2);
    assert.ok(warnings.every((w) => w === "rate limit store unavailable"));

    // In the pipeline, with no database configured at all.
    const limiter = createRateLimiter(createDatabase(null), { log });
    const ctx = {
      auth: { mode: "none", keyName: null, sub: null, role: null, email: null, claims: null },
      req: new Request("http://x/"),
      clientIp: "203.0.113.9",
    } as unknown as Parameters<typeof limiter>[1];
    const headers = await limiter({ limit: 1, periodSeconds: 60 }, ctx, "a");
    assert.deepEqual(headers, { "ratelimit-policy": '"a";q=1;w=60' });
    await assert.rejects(
      limiter({ limit: 1, periodSeconds: 60, onStoreError: "closed" }, ctx, "a"),
      (e: { status?: number; code?: string; headers?: Record<string, string> }) =>
        e.status === 503 && e.code === "rate_limit_unavailable" && !!e.headers?.["retry-after"],
    );
  } finally {
    await sql.end();
  }
});
