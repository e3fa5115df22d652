/**
 * The local stack's credentials, created on first start and kept in
 * `<data dir>/keys.json` (git-ignored) so tokens and keys survive restarts:
 * an ES256 signing key (published as a JWKS), publishable keys and secret
 * keys, including the named `cron` key the scheduler uses.
 */
import { join } from "node:path";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "npm:jose@6";

/** What keys.json holds. */
export interface LocalKeys {
  signingKey: JWK & { kid: string; alg: "ES256" };
  publishableKeys: Record<string, string>;
  secretKeys: Record<string, string>;
}

function randomKey(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const b64 = btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, "");
  return `${prefix}${b64}`;
}

/** Makes a fresh set of local credentials. */
export async function createLocalKeys(): Promise<LocalKeys> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = crypto.randomUUID();
  return {
    signingKey: { ...jwk, kid, alg: "ES256", use: "sig" } as LocalKeys["signingKey"],
    publishableKeys: { default: randomKey("sb_publishable_") },
    secretKeys: { default: randomKey("sb_secret_"), cron: randomKey("sb_secret_") },
  };
}

/** Loads `<dataDir>/keys.json`, creating it (mode 600) on first use. */
export async function loadOrCreateLocalKeys(dataDir: string): Promise<LocalKeys> {
  const file = join(dataDir, "keys.json");
  try {
    const keys = JSON.parse(await Deno.readTextFile(file)) as LocalKeys;
    // A file written before the cron key existed still gets one.
    if (!keys.secretKeys.cron) {
      keys.secretKeys.cron = randomKey("sb_secret_");
      await Deno.writeTextFile(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
    }
    return keys;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new Error(`${file} is unreadable (delete it to make new local keys)`, {
        cause: error,
      });
    }
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const keys = await createLocalKeys();
  await Deno.writeTextFile(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}

/** The public half of the signing key, as served at /auth/v1/.well-known/jwks.json. */
export function publicJwks(keys: LocalKeys): { keys: JWK[] } {
  const { kty, crv, x, y, kid, alg } = keys.signingKey;
  return { keys: [{ kty, crv, x, y, kid, alg, use: "sig", key_ops: ["verify"] }] };
}

/** Claims for {@link signUserToken}. */
export interface UserTokenOptions {
  supabaseUrl: string;
  sub?: string;
  email?: string;
  role?: string;
  ttlSeconds?: number;
  now?: () => number;
}

/** Signs a user access token shaped like Supabase Auth's (aud, iss, role, session). */
export async function signUserToken(keys: LocalKeys, options: UserTokenOptions): Promise<string> {
  const key = await importJWK(keys.signingKey, "ES256");
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  const role = options.role ?? "authenticated";
  return await new SignJWT({
    role,
    ...(options.email ? { email: options.email } : {}),
    aal: "aal1",
    session_id: crypto.randomUUID(),
    is_anonymous: false,
  })
    .setProtectedHeader({ alg: "ES256", kid: keys.signingKey.kid, typ: "JWT" })
    .setSubject(options.sub ?? crypto.randomUUID())
    .setAudience("authenticated")
    .setIssuer(`${options.supabaseUrl.replace(/\/+$/, "")}/auth/v1`)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.ttlSeconds ?? 3600))
    .sign(key);
}
