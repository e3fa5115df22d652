/**
 * The authenticator as HTTP code sees it: the auth layer's checks (auth/), whose
 * refusals (`AuthError`, a JWKS outage) come out as the HttpErrors problem.ts
 * maps them to: 401 with `WWW-Authenticate: Bearer`, 403, 503.
 */
import {
  type AuthDeps,
  type Authenticator,
  createAuthenticator as createChecks,
} from "../auth/authenticate.ts";
import type { Env } from "../core/env.ts";
import { toHttpError } from "./problem.ts";

/** Builds the authenticator for an environment; keys and JWKS are loaded once. */
export function createAuthenticator(env: Env, deps: AuthDeps = {}): Authenticator {
  const checks = createChecks(env, deps);
  const refuse = (error: unknown): never => {
    throw toHttpError(error);
  };
  return {
    authenticate: (req, modes) => checks.authenticate(req, modes).catch(refuse),
    // Never throws: a hit is a token that was verified before.
    cachedUser: (authorization, modes) => checks.cachedUser?.(authorization, modes),
  };
}
