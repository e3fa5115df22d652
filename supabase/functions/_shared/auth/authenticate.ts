/**
 * Authentication (DESIGN §4.2). Modes: `user` (Bearer JWT), `publishable` and
 * `secret` (`apikey` header; `secret:<name>` for a named key, `secret:*` for
 * any), `none`. A list is tried in order; the first match wins. A JWT that is
 * present but invalid is rejected, never downgraded to a weaker mode.
 */
import { ApiKeySet } from "./api_keys.ts";
import type { Env } from "../core/env.ts";
import { HttpError } from "../http/problem.ts";
import { JwksKeyStore } from "./jwks.ts";
import { InvalidTokenError, type JwtClaims, JwtVerifier } from "./verify_jwt.ts";

/** One accepted way to authenticate. */
export type AuthMode =
  | "user"
  | "publishable"
  | `publishable:${string}`
  | "secret"
  | `secret:${string}`
  | "none";

/** Who is calling, as established by {@link Authenticator.authenticate}. */
export interface AuthContext {
  mode: "user" | "publishable" | "secret" | "none";
  /** Name of the matched API key (`default`, `cron`, ...), or `service_role` for a legacy JWT. */
  keyName: string | null;
  sub: string | null;
  role: string | null;
  email: string | null;
  claims: JwtClaims | null;
  /** The bearer token of a `user` caller (to forward, e.g. to PostgREST). */
  token: string | null;
}

/** Establishes an {@link AuthContext} for a request, or throws a 401/403 HttpError. */
export interface Authenticator {
  authenticate(req: Request, modes: readonly AuthMode[]): Promise<AuthContext>;
}

/** Injectable dependencies. */
export interface AuthDeps {
  fetch?: typeof fetch;
  now?: () => number;
}

const NONE: AuthContext = Object.freeze({
  mode: "none",
  keyName: null,
  sub: null,
  role: null,
  email: null,
  claims: null,
  token: null,
}) as AuthContext;

const unauthorized = (code: string, detail: string) =>
  new HttpError({ status: 401, code, detail, headers: { "www-authenticate": "Bearer" } });

/** The 401 for a request that carries no credential at all. */
export const missingCredentials = (modes: readonly AuthMode[]) =>
  unauthorized("missing_credentials", `Credentials required: ${modes.join(", ")}.`);

/** True when the request carries something to authenticate with (valid or not). */
export const hasCredential = (req: Request): boolean =>
  req.headers.get("authorization") !== null || req.headers.get("apikey") !== null;

function bearer(req: Request): string | null {
  const header = req.headers.get("authorization");
  if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== "bearer ") return null;
  const token = header.slice(7).trim();
  // An `sb_...` API key sent as a bearer (supabase-js without a session) is not a JWT.
  return token && !token.startsWith("sb_") ? token : null;
}

function splitMode(mode: AuthMode): [base: string, keyName: string] {
  const i = mode.indexOf(":");
  return i === -1 ? [mode, "default"] : [mode.slice(0, i), mode.slice(i + 1) || "default"];
}

/** Builds the authenticator for an environment; keys and JWKS are loaded once. */
export function createAuthenticator(env: Env, deps: AuthDeps = {}): Authenticator {
  const keys = new JwksKeyStore({
    inline: env.jwks,
    url: env.jwks ? null : env.jwksUrl,
    fetch: deps.fetch,
    now: deps.now,
  });
  const users = new JwtVerifier({
    keys,
    jwtSecret: env.jwtSecret,
    audience: env.jwtAudience,
    issuer: env.jwtIssuer,
    now: deps.now,
  });
  // Legacy service_role keys carry no `aud`; they are HS256 and need the secret.
  const services = env.jwtSecret
    ? new JwtVerifier({ keys: null, jwtSecret: env.jwtSecret, now: deps.now })
    : null;
  const publishable = new ApiKeySet(env.publishableKeys);
  const secret = new ApiKeySet(env.secretKeys);

  async function verifyUser(token: string): Promise<AuthContext> {
    let claims: JwtClaims;
    try {
      claims = await users.verify(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) {
        throw unauthorized("invalid_token", `The bearer token is not valid (${error.reason}).`);
      }
      throw error;
    }
    if (typeof claims.sub !== "string" || claims.sub === "") {
      throw unauthorized("invalid_token", "The bearer token has no subject.");
    }
    return {
      mode: "user",
      keyName: null,
      sub: claims.sub,
      role: typeof claims.role === "string" ? claims.role : null,
      email: typeof claims.email === "string" ? claims.email : null,
      claims,
      token,
    };
  }

  async function legacyServiceRole(
    req: Request,
    token: string | null,
  ): Promise<AuthContext | null> {
    if (!services) return null;
    const apikey = req.headers.get("apikey");
    for (const candidate of [token, apikey?.startsWith("eyJ") ? apikey : null]) {
      if (!candidate) continue;
      try {
        const claims = await services.verify(candidate);
        if (claims.role === "service_role") {
          return { ...NONE, mode: "secret", keyName: "service_role", role: "service_role", claims };
        }
      } catch { /* not a service_role key */ }
    }
    return null;
  }

  return {
    async authenticate(req, modes) {
      const token = bearer(req);
      const apikey = req.headers.get("apikey");
      for (const mode of modes) {
        const [base, keyName] = splitMode(mode);
        if (base === "none") return NONE;
        if (base === "user") {
          if (token) return await verifyUser(token);
          continue;
        }
        if (base !== "publishable" && base !== "secret") continue;
        if (apikey && !apikey.startsWith("eyJ")) {
          const set = base === "publishable" ? publishable : secret;
          const matched = await set.match(apikey, keyName);
          if (matched) return { ...NONE, mode: base, keyName: matched };
        }
        if (base === "secret" && (keyName === "default" || keyName === "*")) {
          const legacy = await legacyServiceRole(req, token);
          if (legacy) return legacy;
        }
      }
      return await rejection(req, modes, token, apikey);
    },
  };

  /** Decides between 401 (no valid credential) and 403 (valid, but not accepted here). */
  async function rejection(
    req: Request,
    modes: readonly AuthMode[],
    token: string | null,
    apikey: string | null,
  ): Promise<never> {
    const forbidden = new HttpError({
      status: 403,
      code: "forbidden_credential",
      detail: `This endpoint accepts: ${modes.join(", ")}.`,
    });
    if (token && !modes.includes("user")) {
      if (await legacyServiceRole(req, token)) throw forbidden;
      await verifyUser(token); // throws 401 when invalid
      throw forbidden;
    }
    if (apikey) {
      const known = apikey.startsWith("eyJ")
        ? await legacyServiceRole(req, null)
        : (await publishable.match(apikey, "*")) ?? (await secret.match(apikey, "*"));
      if (known) throw forbidden;
      throw unauthorized("invalid_api_key", "The apikey header does not hold a valid key.");
    }
    throw missingCredentials(modes);
  }
}
