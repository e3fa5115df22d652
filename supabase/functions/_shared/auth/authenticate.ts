/**
 * Authentication (README.md, "What this is, and why": Auth). Modes: `user` (Bearer JWT), `publishable` and
 * `secret` (`apikey` header; `secret:<name>` for a named key, `secret:*` for
 * any), `none`. A list is tried in order; the first match wins. A JWT that is
 * present but invalid is rejected, never downgraded to a weaker mode.
 */
import { ApiKeySet } from "./api_keys.ts";
import type { Env } from "../core/env.ts";
import { LayerError } from "../core/errors.ts";
import type { Clock } from "../core/time.ts";
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

/**
 * Why a request was refused: `unauthenticated` (no valid credential: a 401 with
 * `WWW-Authenticate: Bearer`) or `forbidden` (a valid credential this endpoint
 * does not accept: a 403). Codes: `missing_credentials`, `invalid_token`,
 * `invalid_api_key`, `forbidden_credential`.
 */
export class AuthError extends LayerError {
  override readonly name = "AuthError";
  constructor(readonly kind: "unauthenticated" | "forbidden", code: string, message: string) {
    super(code, message);
  }
}

/** Establishes an {@link AuthContext} for a request, or throws {@link AuthError} (or a JWKS outage). */
export interface Authenticator {
  authenticate(req: Request, modes: readonly AuthMode[]): Promise<AuthContext>;
  /**
   * The hot path, synchronous and without I/O: when `modes` tries `user` first and
   * the bearer token in `authorization` (the header's value) was verified before
   * and still holds, its context; otherwise undefined, and `authenticate` decides.
   */
  cachedUser?(authorization: string | null, modes: readonly AuthMode[]): AuthContext | undefined;
}

/** Injectable dependencies. */
export interface AuthDeps {
  fetch?: typeof fetch;
  now?: Clock;
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
  new AuthError("unauthenticated", code, detail);

/** The refusal of a request that carries no credential at all. */
export const missingCredentials = (modes: readonly AuthMode[]) =>
  unauthorized("missing_credentials", `Credentials required: ${modes.join(", ")}.`);

/** True when the request carries something to authenticate with (valid or not). */
export const hasCredential = (req: Request): boolean =>
  req.headers.get("authorization") !== null || req.headers.get("apikey") !== null;

/** The JWT in an `Authorization: Bearer` header value, or null. */
function bearer(header: string | null): string | null {
  if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== "bearer ") return null;
  const token = header.slice(7).trim();
  // An `sb_...` API key sent as a bearer (supabase-js without a session) is not a JWT.
  return token && !token.startsWith("sb_") ? token : null;
}

function splitMode(mode: AuthMode): [base: string, keyName: string] {
  const i = mode.indexOf(":");
  return i === -1 ? [mode, "default"] : [mode.slice(0, i), mode.slice(i + 1) || "default"];
}

/** The context of a verified user token; a token without a subject is refused. */
function userContext(claims: JwtClaims, token: string): AuthContext {
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

/** Builds the authenticator for an environment; keys and JWKS are loaded once. */
export function createAuthenticator(env: Env, deps: AuthDeps = {}): Authenticator {
  const keys = new JwksKeyStore({
    inline: env.jwks,
    url: env.jwks ? null : env.jwksUrl,
    fetch: deps.fetch,
    now: deps.now,
  });
  return new ModeAuthenticator(
    new JwtVerifier({
      keys,
      jwtSecret: env.jwtSecret,
      audience: env.jwtAudience,
      issuer: env.jwtIssuer,
      now: deps.now,
    }),
    // Legacy service_role keys carry no `aud`; they are HS256 and need the secret.
    env.jwtSecret ? new JwtVerifier({ keys: null, jwtSecret: env.jwtSecret, now: deps.now }) : null,
    new ApiKeySet(env.publishableKeys),
    new ApiKeySet(env.secretKeys),
  );
}

/** Tries a request's credentials against a list of modes, in order. */
class ModeAuthenticator implements Authenticator {
  constructor(
    private readonly users: JwtVerifier,
    private readonly services: JwtVerifier | null,
    private readonly publishable: ApiKeySet,
    private readonly secret: ApiKeySet,
  ) {}

  cachedUser(authorization: string | null, modes: readonly AuthMode[]): AuthContext | undefined {
    if (modes[0] !== "user") return undefined;
    const token = bearer(authorization);
    const claims = token ? this.users.cached(token) : undefined;
    // A cached token without a subject takes the slow path, which refuses it.
    if (!claims || typeof claims.sub !== "string" || claims.sub === "") return undefined;
    return userContext(claims, token!);
  }

  async authenticate(req: Request, modes: readonly AuthMode[]): Promise<AuthContext> {
    const token = bearer(req.headers.get("authorization"));
    const apikey = req.headers.get("apikey");
    for (const mode of modes) {
      const [base, keyName] = splitMode(mode);
      if (base === "none") return NONE;
      if (base === "user") {
        if (!token) continue;
        const hit = this.users.cached(token);
        return hit ? userContext(hit, token) : await this.verifyUser(token);
      }
      if (base !== "publishable" && base !== "secret") continue;
      if (apikey && !apikey.startsWith("eyJ")) {
        const set = base === "publishable" ? this.publishable : this.secret;
        const matched = await set.match(apikey, keyName);
        if (matched) return { ...NONE, mode: base, keyName: matched };
      }
      if (base === "secret" && (keyName === "default" || keyName === "*")) {
        const legacy = await this.legacyServiceRole(req, token);
        if (legacy) return legacy;
      }
    }
    return await this.rejection(req, modes, token, apikey);
  }

  private async verifyUser(token: string): Promise<AuthContext> {
    let claims: JwtClaims;
    try {
      claims = await this.users.verify(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) {
        throw unauthorized("invalid_token", `The bearer token is not valid (${error.reason}).`);
      }
      throw error;
    }
    return userContext(claims, token);
  }

  private async legacyServiceRole(req: Request, token: string | null): Promise<AuthContext | null> {
    if (!this.services) return null;
    const apikey = req.headers.get("apikey");
    for (const candidate of [token, apikey?.startsWith("eyJ") ? apikey : null]) {
      if (!candidate) continue;
      try {
        const claims = await this.services.verify(candidate);
        if (claims.role === "service_role") {
          return { ...NONE, mode: "secret", keyName: "service_role", role: "service_role", claims };
        }
      } catch { /* not a service_role key */ }
    }
    return null;
  }

  /** Decides between unauthenticated (no valid credential) and forbidden (valid, not accepted here). */
  private async rejection(
    req: Request,
    modes: readonly AuthMode[],
    token: string | null,
    apikey: string | null,
  ): Promise<never> {
    const forbidden = new AuthError(
      "forbidden",
      "forbidden_credential",
      `This endpoint accepts: ${modes.join(", ")}.`,
    );
    if (token && !modes.includes("user")) {
      if (await this.legacyServiceRole(req, token)) throw forbidden;
      await this.verifyUser(token); // throws unauthenticated when invalid
      throw forbidden;
    }
    if (apikey) {
      const known = apikey.startsWith("eyJ")
        ? await this.legacyServiceRole(req, null)
        : (await this.publishable.match(apikey, "*")) ?? (await this.secret.match(apikey, "*"));
      if (known) throw forbidden;
      throw unauthorized("invalid_api_key", "The apikey header does not hold a valid key.");
    }
    throw missingCredentials(modes);
  }
}
