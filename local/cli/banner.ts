/** The start banner: URLs, keys and a ready-to-run request, like `supabase start` prints. */
import type { Stack } from "../stack.ts";

/** Renders the banner; `token` is a user JWT for the example curl. */
export function banner(stack: Stack, token: string): string {
  const { keys, url } = stack;
  const fn = `${url}/functions/v1`;
  const names = stack.pool.names;
  const example = names.includes("api") ? "api" : names[0];
  const lines = [
    "",
    "  Local stack is running (no Docker).",
    "",
    `  API URL          ${url}`,
    `  Functions        ${fn}/<name>   (${names.join(", ") || "none yet"})`,
    `  JWKS             ${url}/auth/v1/.well-known/jwks.json`,
    `  DB URL           ${stack.dbUrl}${stack.database.embedded ? "" : "  (SUPABASE_DB_URL)"}`,
    `  Publishable key  ${keys.publishableKeys.default}`,
    `  Secret key       ${keys.secretKeys.default}`,
    `  Cron secret key  ${keys.secretKeys.cron}   (name: cron)`,
    "",
    "  A user token (1 h):   deno task token [--sub ID] [--email E] [--role R] [--ttl S]",
  ];
  if (example) {
    const payload = example === "api" ? `'{"action":"whoami","payload":{}}'` : `'{}'`;
    lines.push(
      "",
      `  curl -sS -X POST ${fn}/${example} \\`,
      `    -H 'content-type: application/json' \\`,
      `    -H 'authorization: Bearer ${token}' \\`,
      `    -d ${payload}`,
    );
  }
  lines.push("", "  Ctrl-C stops everything.", "");
  return lines.join("\n");
}
