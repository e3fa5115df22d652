/**
 * The verification keys of user JWTs: an inline JWKS, or a remote one that is
 * cached, refreshed after `maxAgeMs`, and refetched on an unknown `kid` at most
 * once per `cooldownMs` (so a flood of forged kids cannot hammer the auth server).
 */
import type { JWK } from "npm:jose@6";
import { LayerError } from "../core/errors.ts";
import type { Clock } from "../core/time.ts";

let jose: Promise<typeof import("npm:jose@6")> | undefined;

/** jose, loaded on the first verification: /health and API-key calls never pay for it. */
export function loadJose(): Promise<typeof import("npm:jose@6")> {
  jose ??= import("npm:jose@6");
  return jose;
}

/** Algorithms accepted from a JWKS; HS256 is handled separately (legacy secret). */
export const ASYMMETRIC_ALGS = new Set(["ES256", "RS256"]);

/** The signing keys could not be loaded and none are in hand (code `jwks_unavailable`; a 503). */
export class JwksUnavailableError extends LayerError {
  override readonly name = "JwksUnavailableError";
  constructor(cause: unknown) {
    super("jwks_unavailable", "The signing keys could not be loaded; try again shortly.", {
      cause,
    });
  }
}

/** Options of {@link JwksKeyStore}. */
export interface JwksOptions {
  inline?: { keys: Record<string, unknown>[] } | null;
  url?: URL | null;
  fetch?: typeof fetch;
  now?: Clock;
  cooldownMs?: number;
  maxAgeMs?: number;
  timeoutMs?: number;
}

type KeyEntry = { alg: string; key: CryptoKey; fingerprint: string };

/** Resolves `kid` to an imported public key. */
export class JwksKeyStore {
  #keys = new Map<string, KeyEntry>();
  #loadedAt = -Infinity;
  #lastFetch = -Infinity;
  #inflight: Promise<void> | null = null;
  #ready: Promise<void> | null = null;
  readonly #opts: Required<Omit<JwksOptions, "inline" | "url">> & JwksOptions;

  constructor(options: JwksOptions) {
    this.#opts = {
      ...options,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
      now: options.now ?? Date.now,
      cooldownMs: options.cooldownMs ?? 30_000,
      maxAgeMs: options.maxAgeMs ?? 600_000,
      timeoutMs: options.timeoutMs ?? 5_000,
    };
  }

  /** The key currently bound to `kid`, without any I/O (used to validate cache hits). */
  current(kid: string): CryptoKey | undefined {
    return this.#keys.get(kid)?.key;
  }

  /**
   * The key for `kid` and `alg`, fetching the remote set when it is stale or the
   * kid is unknown (subject to the cooldown). Undefined when no such key exists.
   */
  async get(kid: string, alg: string): Promise<CryptoKey | undefined> {
    // Inline keys are imported on first use, not at start-up (cold start).
    if (this.#opts.inline) await (this.#ready ??= this.#install(this.#opts.inline.keys));
    const now = this.#opts.now();
    if (this.#opts.url) {
      const stale = now - this.#loadedAt > this.#opts.maxAgeMs;
      const unknown = !this.#keys.has(kid) && now - this.#lastFetch > this.#opts.cooldownMs;
      if (stale || unknown) await this.#refresh(stale && this.#keys.size === 0);
    }
    const entry = this.#keys.get(kid);
    return entry && entry.alg === alg ? entry.key : undefined;
  }

  #refresh(mustSucceed: boolean): Promise<void> {
    this.#inflight ??= this.#fetchKeys().finally(() => (this.#inflight = null));
    return this.#inflight.catch((error) => {
      // With keys in hand we keep verifying against them; with none, callers get 503.
      if (mustSucceed || this.#keys.size === 0) throw new JwksUnavailableError(error);
    });
  }

  async #fetchKeys(): Promise<void> {
    this.#lastFetch = this.#opts.now();
    const res = await this.#opts.fetch(this.#opts.url!, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(this.#opts.timeoutMs),
    });
    if (!res.ok) throw new Error(`JWKS fetch answered ${res.status}`);
    const body = await res.json() as { keys?: unknown };
    if (!Array.isArray(body.keys)) throw new Error("JWKS response has no keys array");
    await this.#install(body.keys as Record<string, unknown>[]);
    this.#loadedAt = this.#opts.now();
  }

  async #install(jwks: Record<string, unknown>[]): Promise<void> {
    const next = new Map<string, KeyEntry>();
    for (const jwk of jwks) {
      const kid = typeof jwk.kid === "string" ? jwk.kid : null;
      const alg = typeof jwk.alg === "string" ? jwk.alg : inferAlg(jwk);
      if (!kid || !alg || !ASYMMETRIC_ALGS.has(alg)) continue;
      if (jwk.use !== undefined && jwk.use !== "sig") continue;
      // Re-use the imported key when unchanged so cached verifications stay valid.
      const fingerprint = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e]);
      const previous = this.#keys.get(kid);
      if (previous && previous.alg === alg && previous.fingerprint === fingerprint) {
        next.set(kid, previous);
        continue;
      }
      try {
        const { importJWK } = await loadJose();
        const key = await importJWK({ ...(jwk as JWK), alg }, alg);
        if (key instanceof CryptoKey) next.set(kid, { alg, key, fingerprint });
      } catch {
        // A malformed key in the set must not disable the others.
      }
    }
    this.#keys = next;
  }
}

function inferAlg(jwk: Record<string, unknown>): string | null {
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "RSA") return "RS256";
  return null;
}
