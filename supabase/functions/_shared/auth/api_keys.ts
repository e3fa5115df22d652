/**
 * API key matching in constant time. Both sides are hashed with SHA-256 first,
 * so neither the content nor the length of a configured key leaks through
 * timing; configured keys are hashed once, on the first match (not at start:
 * the first WebCrypto call costs a cold start ~1-2 ms, and /health never needs it).
 */

const encoder = new TextEncoder();

async function digest(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(value)));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

/** A named set of keys (e.g. `{ default, cron }`) that can be matched against a presented key. */
export class ApiKeySet {
  #digests: Promise<[string, Uint8Array][]> | null = null;

  constructor(readonly keys: Record<string, string>) {}

  #configured(): Promise<[string, Uint8Array][]> {
    this.#digests ??= Promise.all(
      Object.entries(this.keys).map(async ([name, key]) =>
        [name, await digest(key)] as [string, Uint8Array]
      ),
    );
    return this.#digests;
  }

  /**
   * The name of the key equal to `presented`, restricted to `name` (or any key
   * with `*`); null when none matches. Every candidate is compared, match or not.
   */
  async match(presented: string, name: string | "*"): Promise<string | null> {
    const configured = this.#configured();
    const wanted = await digest(presented);
    let found: string | null = null;
    for (const [keyName, keyDigest] of await configured) {
      const eligible = name === "*" || keyName === name;
      if (equalBytes(wanted, keyDigest) && eligible && found === null) found = keyName;
    }
    return found;
  }
}
