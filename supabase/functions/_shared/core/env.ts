/**
 * The one module that reads the environment (README.md, "Environment"). Everything
 * else gets an {@link Env} through its `deps`, so tests pass their own values.
 */
import { LayerError } from "./errors.ts";
import { isLoopbackHost } from "./net.ts";

/** Which header to believe for the client address, and how many trusted proxies append to `x-forwarded-for`. */
export interface ClientIpPolicy {
  /** Lower-case header name, or null to believe no header. */
  header: string | null;
  /** Trusted proxies that each append one `x-forwarded-for` hop (>= 1). */
  hops: number;
}

/** Validated configuration of a function. */
export interface Env {
  supabaseUrl: string | null;
  /** Direct Postgres URL (`SUPABASE_DB_URL`, else `DATABASE_URL`). */
  dbUrl: string | null;
  /** Inline JWKS (`SUPABASE_JWKS`), already parsed. */
  jwks: { keys: Record<string, unknown>[] } | null;
  /** Remote JWKS; default `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`. */
  jwksUrl: URL | null;
  publishableKeys: Record<string, string>;
  secretKeys: Record<string, string>;
  /** Legacy HS256 secret: enables legacy user and service_role JWTs. */
  jwtSecret: string | null;
  /** Expected `aud` of user JWTs (`SUPABASE_JWT_AUDIENCE`, default "authenticated"; "*" = any). */
  jwtAudience: string | null;
  /** Expected `iss` of user JWTs, when set (`SUPABASE_JWT_ISSUER`). */
  jwtIssuer: string | null;
  /** CORS allowlist; `["*"]` means any origin (never with credentials). */
  allowedOrigins: string[];
  /**
   * Hosts `webhook.deliver` may call although they resolve to private or
   * loopback addresses (`QUEUE_WEBHOOK_ALLOW_HOSTS`, comma-separated; local use).
   */
  webhookAllowHosts: string[];
  /** Payment partner of the `order.checkout` example saga (`CHECKOUT_PAYMENT_URL`); null: not run. */
  checkoutPaymentUrl: string | null;
  /**
   * The header the platform's proxy vouches for the client address in
   * (`RATE_LIMIT_TRUSTED_IP_HEADER`, lower-cased; null: none, use the peer address)
   * and how many trusted proxies append to `x-forwarded-for` (`RATE_LIMIT_TRUSTED_PROXY_HOPS`).
   */
  clientIp: ClientIpPolicy;
  /** `debug` | `info` | `warn` | `error` (`LOG_LEVEL`, default info). */
  logLevel: "debug" | "info" | "warn" | "error";
  /** OTLP/HTTP collector base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); null: no span export. */
  otlpEndpoint: string | null;
  /**
   * The share of requests that get an access-log line at `info` (`ACCESS_LOG`:
   * `off`, the default, `on`, or a fraction such as `0.01`). Off by default: the
   * hosted platform (and `deno task dev`'s gateway) already logs every
   * invocation, and the line costs ~0.6-0.8x throughput.
   */
  accessLogSample: number;
}

/** A misconfiguration (code `misconfigured`): answered 500 with a generic body, logged with its detail. */
export class EnvError extends LayerError {
  override readonly name = "EnvError";
  constructor(detail: string) {
    super("misconfigured", detail);
  }
}

function parseKeyMap(name: string, raw: string | undefined): Record<string, string> | null {
  if (raw === undefined || raw.trim() === "") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EnvError(`${name} must be a JSON object of key names to keys`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new EnvError(`${name} must be a JSON object of key names to keys`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== "string" || v === "") throw new EnvError(`${name}.${k} must be a string`);
    out[k] = v;
  }
  return out;
}

function keys(
  get: (n: string) => string | undefined,
  plural: string,
  singular: string,
): Record<string, string> {
  const many = parseKeyMap(plural, get(plural));
  if (many) return many;
  const one = get(singular)?.trim();
  return one ? { default: one } : {};
}

function parseJwks(raw: string | undefined): Env["jwks"] {
  if (raw === undefined || raw.trim() === "") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EnvError('SUPABASE_JWKS must be JSON: {"keys":[...]} or [...]');
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(list)) throw new EnvError("SUPABASE_JWKS must hold a keys array");
  return { keys: list as Record<string, unknown>[] };
}

function parseJwksUrl(raw: string | undefined, supabaseUrl: string | null): URL | null {
  const value = raw?.trim() || (supabaseUrl ? `${supabaseUrl}/auth/v1/.well-known/jwks.json` : "");
  if (!value) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new EnvError("SUPABASE_JWKS_URL is not a URL");
  }
  if (url.protocol === "https:") return url;
  // http only on loopback: a JWKS fetched over plain http could be swapped.
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return url;
  throw new EnvError("SUPABASE_JWKS_URL must be https (http only on loopback)");
}

// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

function parseClientIp(header: string | undefined, hops: string | undefined): ClientIpPolicy {
  const name = header?.trim().toLowerCase() || null;
  if (name !== null && !HEADER_NAME.test(name)) {
    throw new EnvError("RATE_LIMIT_TRUSTED_IP_HEADER must be one header name");
  }
  const count = hops?.trim() ? Number(hops.trim()) : 1;
  if (!Number.isInteger(count) || count < 1 || count > 32) {
    throw new EnvError("RATE_LIMIT_TRUSTED_PROXY_HOPS must be an integer in 1..32");
  }
  return { header: name, hops: count };
}

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

function parseAccessLog(raw: string | undefined): number {
  const v = raw?.trim().toLowerCase() || "off";
  if (v === "off") return 0;
  if (v === "on") return 1;
  const share = Number(v);
  if (!(share >= 0 && share <= 1)) throw new EnvError("ACCESS_LOG must be on, off or a share 0..1");
  return share;
}

/**
 * Reads and validates the environment. Throws {@link EnvError} naming the bad
 * variable (never its value).
 */
export function readEnv(get: (name: string) => string | undefined = denoEnv): Env {
  const supabaseUrl = get("SUPABASE_URL")?.trim().replace(/\/+$/, "") || null;
  const level = (get("LOG_LEVEL")?.trim().toLowerCase() || "info") as Env["logLevel"];
  if (!LOG_LEVELS.includes(level)) throw new EnvError("LOG_LEVEL must be debug|info|warn|error");
  const audience = get("SUPABASE_JWT_AUDIENCE")?.trim();
  return {
    supabaseUrl,
    dbUrl: get("SUPABASE_DB_URL")?.trim() || get("DATABASE_URL")?.trim() || null,
    jwks: parseJwks(get("SUPABASE_JWKS")),
    jwksUrl: parseJwksUrl(get("SUPABASE_JWKS_URL"), supabaseUrl),
    publishableKeys: keys(get, "SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_PUBLISHABLE_KEY"),
    secretKeys: keys(get, "SUPABASE_SECRET_KEYS", "SUPABASE_SECRET_KEY"),
    jwtSecret: get("SUPABASE_JWT_SECRET")?.trim() || null,
    jwtAudience: audience === "*" ? null : audience || "authenticated",
    jwtIssuer: get("SUPABASE_JWT_ISSUER")?.trim() || null,
    allowedOrigins: (get("ALLOWED_ORIGINS") ?? "*").split(",").map((s) => s.trim()).filter(
      Boolean,
    ),
    webhookAllowHosts: (get("QUEUE_WEBHOOK_ALLOW_HOSTS") ?? "").split(",").map((s) => s.trim())
      .filter(Boolean),
    checkoutPaymentUrl: get("CHECKOUT_PAYMENT_URL")?.trim() || null,
    clientIp: parseClientIp(
      get("RATE_LIMIT_TRUSTED_IP_HEADER"),
      get("RATE_LIMIT_TRUSTED_PROXY_HOPS"),
    ),
    logLevel: level,
    otlpEndpoint: parseOtlpEndpoint(get("OTEL_EXPORTER_OTLP_ENDPOINT")),
    accessLogSample: parseAccessLog(get("ACCESS_LOG")),
  };
}

function parseOtlpEndpoint(raw: string | undefined): string | null {
  const value = raw?.trim();
  if (!value) return null;
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new EnvError("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL");
  }
  return value;
}

/**
 * The variable holding the secret of webhook signing key `key` (events webhook
 * subscriptions, docs/events.md): `EVENTS_WEBHOOK_SECRET_` + the key upper-cased,
 * every character other than A-Z and 0-9 as `_` (`crm-eu` -> `EVENTS_WEBHOOK_SECRET_CRM_EU`).
 */
export function webhookSecretVariable(key: string): string {
  return `EVENTS_WEBHOOK_SECRET_${key.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The Standard Webhooks secrets of the named signing keys, each read from
 * {@link webhookSecretVariable}: the secrets live in the environment (`supabase
 * secrets set`), never in the repository or in Postgres. Throws {@link EnvError}
 * naming every unset or malformed variable (never a value): a webhook
 * subscription without its secret is a misconfiguration, not an unsigned delivery.
 */
export function readWebhookSigningKeys(
  keys: Iterable<string>,
  get: (name: string) => string | undefined = denoEnv,
): Record<string, string> {
  const out: Record<string, string> = {};
  const bad: string[] = [];
  for (const key of new Set(keys)) {
    const variable = webhookSecretVariable(key);
    const value = get(variable)?.trim() ?? "";
    if (!isWebhookSecret(value)) bad.push(variable);
    else out[key] = value;
  }
  if (bad.length) {
    throw new EnvError(
      `${
        bad.join(", ")
      } must be set to a Standard Webhooks secret (whsec_ + base64 of 24..64 bytes)`,
    );
  }
  return out;
}

/** `whsec_` + base64 of 24..64 bytes (what npm:standardwebhooks and the signers accept). */
function isWebhookSecret(value: string): boolean {
  if (!value.startsWith("whsec_")) return false;
  try {
    const n = atob(value.slice(6)).length;
    return n >= 24 && n <= 64;
  } catch {
    return false;
  }
}

function denoEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // No --allow-env: behave as unset rather than crash the isolate.
    return undefined;
  }
}
