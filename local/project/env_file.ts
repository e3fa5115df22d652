/**
 * Reads dotenv files (`supabase/functions/.env`, `--env-file`) with the rules
 * the Supabase CLI applies: `KEY=value`, optional `export `, `#` comments,
 * single quotes literal, double quotes with `\n` escapes.
 */

/** A line that is not `KEY=value`; names the file and line. */
export class EnvFileError extends Error {
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.name = "EnvFileError";
  }
}

/** Parses dotenv text into a record; later keys win. */
export function parseEnvFile(text: string, file = "<env>"): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new EnvFileError(file, i + 1, "expected KEY=value");
    const [, key, rest] = match as unknown as [string, string, string];
    out[key] = parseValue(rest, file, i + 1);
  }
  return out;
}

function parseValue(raw: string, file: string, line: number): string {
  const quote = raw[0];
  if (quote === "'" || quote === '"') {
    const end = raw.indexOf(quote, 1);
    if (end === -1) throw new EnvFileError(file, line, "unterminated quoted value");
    const body = raw.slice(1, end);
    return quote === "'" ? body : body.replace(/\\n/g, "\n").replace(/\\"/g, '"');
  }
  // An unquoted value ends at an inline comment.
  return raw.replace(/\s+#.*$/, "").trim();
}

/** Reads a dotenv file; a missing file is an empty set unless `required`. */
export async function readEnvFile(
  path: string,
  required = false,
): Promise<Record<string, string>> {
  try {
    return parseEnvFile(await Deno.readTextFile(path), path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !required) return {};
    if (error instanceof Deno.errors.NotFound) {
      throw new EnvFileError(path, 0, "file not found");
    }
    throw error;
  }
}
