/** Typed reads of config.toml values; a wrong value is a {@link ConfigError} naming its table and key. */

/** config.toml could not be read or has a wrong value; names the file and, when known, line. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(`${file}${line ? `:${line}:${column ?? 1}` : ""}: ${detail}`);
    this.name = "ConfigError";
  }
}

/** The value as a TOML table, or an empty one. */
export function table(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

/** A boolean or nothing. */
export function bool(file: string, where: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new ConfigError(file, `${where} must be true or false`);
}

/** A string or nothing. */
export function str(file: string, where: string, value: unknown): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  throw new ConfigError(file, `${where} must be a string`);
}

/** A number in [min, max] or nothing. */
export function num(
  file: string,
  where: string,
  value: unknown,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(file, `${where} must be a number between ${min} and ${max}`);
  }
  return value;
}
