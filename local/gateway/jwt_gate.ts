/**
 * The gateway's `verify_jwt = true` check: like the hosted relay, it lets a
 * request through only with `Authorization: Bearer <JWT>` signed by the
 * project's key and not expired. Functions with `verify_jwt = false` do their
 * own authentication.
 */
import { createLocalJWKSet, errors, type JWK, jwtVerify } from "npm:jose@6";

/** Why a request was refused. */
export type JwtGateResult = { ok: true } | { ok: false; code: string; detail: string };

/** Builds a checker bound to the local JWKS. */
export function jwtGate(jwks: { keys: JWK[] }): (req: Request) => Promise<JwtGateResult> {
  const keySet = createLocalJWKSet(jwks);
  return async (req) => {
    const header = req.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      return { ok: false, code: "missing_jwt", detail: "Authorization: Bearer <JWT> required" };
    }
    try {
      await jwtVerify(match[1]!, keySet, { algorithms: ["ES256"] });
      return { ok: true };
    } catch (error) {
      const detail = error instanceof errors.JWTExpired ? "JWT expired" : "invalid JWT";
      return { ok: false, code: "invalid_jwt", detail };
    }
  };
}
