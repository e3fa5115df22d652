/** `auth`: who is calling. Modes, the JWT verifier, the JWKS store and API keys. */
export { ApiKeySet } from "./api_keys.ts";
export {
  type AuthContext,
  type AuthDeps,
  type Authenticator,
  AuthError,
  type AuthMode,
  createAuthenticator,
  hasCredential,
  missingCredentials,
} from "./authenticate.ts";
export { JwksKeyStore, type JwksOptions, JwksUnavailableError } from "./jwks.ts";
export {
  InvalidTokenError,
  type JwtClaims,
  JwtVerifier,
  type JwtVerifierOptions,
} from "./verify_jwt.ts";
