/** Command-line flags of the benches: `--name=value`, `--flag` (true), `--no-flag` (false). */

function raw(name: string): string | undefined {
  const prefix = `--${name}=`;
  return Deno.args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/** A numeric flag; a value that is not a number is an error, not a silent fallback. */
export function num(name: string, fallback: number): number {
  const v = raw(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return n;
}

/** A comma-separated list of numbers (`--scale=1,2,4,8`). */
export function nums(name: string, fallback: number[]): number[] {
  const v = raw(name);
  if (v === undefined) return fallback;
  return v.split(",").filter(Boolean).map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${x}`);
    return n;
  });
}

/** A boolean flag: `--name`, `--name=true|false`, `--no-name`. */
export function flag(name: string, fallback: boolean): boolean {
  if (Deno.args.includes(`--${name}`)) return true;
  if (Deno.args.includes(`--no-${name}`)) return false;
  const v = raw(name);
  return v === undefined ? fallback : v !== "false" && v !== "0";
}

/** A comma-separated list of words (`--only=ours,graphile`); empty when absent. */
export function words(name: string): string[] {
  return raw(name)?.split(",").filter(Boolean) ?? [];
}
