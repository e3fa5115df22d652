/**
 * Splits a SQL script into statements on top-level semicolons, the way the
 * Supabase CLI records them in `supabase_migrations.schema_migrations.statements`:
 * quotes, dollar-quoted bodies and comments never split a statement, and
 * trailing text after the last semicolon (even comments only) is kept as a
 * statement of its own, as the CLI does (a test compares with `db push`).
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;
  const push = (end: number) => {
    const text = script.slice(start, end).trim();
    if (text) statements.push(text);
  };
  while (i < n) {
    const ch = script[i]!;
    const next = script[i + 1];
    if (ch === "-" && next === "-") {
      const eol = script.indexOf("\n", i);
      i = eol === -1 ? n : eol + 1;
    } else if (ch === "/" && next === "*") {
      i = skipBlockComment(script, i);
    } else if (ch === "'" || ch === '"') {
      i = skipQuoted(script, i, ch);
    } else if (ch === "$") {
      const tag = /^\$[A-Za-z_][A-Za-z0-9_]*\$|^\$\$/.exec(script.slice(i, i + 64));
      if (tag) {
        const close = script.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? n : close + tag[0].length;
      } else i++;
    } else if (ch === ";") {
      push(i + 1);
      start = i + 1;
      i++;
    } else i++;
  }
  push(n);
  return statements;
}

function skipQuoted(script: string, i: number, quote: string): number {
  let j = i + 1;
  while (j < script.length) {
    if (script[j] === quote) {
      if (script[j + 1] === quote) j += 2;
      else return j + 1;
    } else j++;
  }
  return j;
}

function skipBlockComment(script: string, i: number): number {
  // Postgres block comments nest.
  let depth = 0;
  let j = i;
  while (j < script.length) {
    if (script[j] === "/" && script[j + 1] === "*") {
      depth++;
      j += 2;
    } else if (script[j] === "*" && script[j + 1] === "/") {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else j++;
  }
  return j;
}
