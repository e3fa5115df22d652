/**
 * Real signing keys for tests, generated at test time: ES256 and RS256 key
 * pairs published as a JWKS, a legacy HS256 secret, and sb_ API keys.
 */
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "npm:jose@6";

/** A key pair with its public JWK. */
export interface TestKey {
  kid: string;
  alg: "ES256" | "RS256";
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Generates a key pair whose public half carries `kid` and `alg`. */
export async function makeKey(alg: "ES256" | "RS256", kid = crypto.randomUUID()): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk };
}

/** A random API key in Supabase's format. */
export function apiKey(kind: "publishable" | "secret"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return `sb_${kind}_${btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, "x")}`;
}

/** Options for {@link signToken}. */
export interface TokenOptions {
  sub?: string | null;
  role?: string;
  email?: string;
  aud?: string | null;
  iss?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number | null;
  notBefore?: number;
  kid?: string | null;
  extra?: Record<string, unknown>;
}

/** Signs a user JWT with a test key (or an HS256 secret). */
export async function signToken(
  key: TestKey | { secret: string },
  options: TokenOptions = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    role: options.role ?? "authenticated",
    ...options.extra,
  };
  if (options.sub !== null) claims.sub = options.sub ?? crypto.randomUUID();
  if (options.email) claims.email = options.email;
  if (options.aud !== null) claims.aud = options.aud ?? "authenticated";
  if (options.iss) claims.iss = options.iss;
  if (options.notBefore !== undefined) claims.nbf = now + options.notBefore;
  if (options.expiresIn !== null) claims.exp = now + (options.expiresIn ?? 3600);
  const jwt = new SignJWT(claims).setIssuedAt(now);
  if ("secret" in key) {
    return await jwt.setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
      new TextEncoder().encode(key.secret),
    );
  }
  const header: { alg: string; typ: string; kid?: string } = { alg: key.alg, typ: "JWT" };
  if (options.kid !== null) header.kid = options.kid ?? key.kid;
  return await jwt.setProtectedHeader(header).sign(key.privateKey);
}

/** Builds an unsigned (`alg: none`) token with the given claims. */
export function unsecuredToken(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) =>
    btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-")
      .replace(/\//g, "_");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

/** A complete set of credentials for one test project. */
export interface TestProject {
  es256: TestKey;
  rs256: TestKey;
  /** Signed by nobody the project trusts. */
  stranger: TestKey;
  jwks: { keys: JWK[] };
  publishable: string;
  secret: string;
  cronSecret: string;
  jwtSecret: string;
  /** Environment variables as the platform would set them. */
  env: Record<string, string>;
}

/** Generates keys and the matching environment. */
export async function makeProject(extraEnv: Record<string, string> = {}): Promise<TestProject> {
  const [es256, rs256, stranger] = await Promise.all([
    makeKey("ES256"),
    makeKey("RS256"),
    makeKey("ES256"),
  ]);
  const jwks = { keys: [es256.publicJwk, rs256.publicJwk] };
  const publishable = apiKey("publishable");
  const secret = apiKey("secret");
  const cronSecret = apiKey("secret");
  const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
  const env: Record<string, string> = {
    SUPABASE_URL: "http://127.0.0.1:54321",
    SUPABASE_JWKS: JSON.stringify(jwks),
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishable }),
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secret, cron: cronSecret }),
    LOG_LEVEL: "error",
    ...extraEnv,
  };
  return { es256, rs256, stranger, jwks, publishable, secret, cronSecret, jwtSecret, env };
}
