/**
 * What `deno task new <name>` writes: the layout `supabase functions new`
 * writes (index.ts, a deno.json import map, a `[functions.<name>]` block in
 * config.toml naming both), with `npm:` imports in place of the CLI
 * template's `jsr:` one, which cannot be fetched where JSR is unreachable.
 */
import { join } from "node:path";
import { exists } from "../common/mod.ts";

/** A name the CLI accepts and the gateway can route: a letter, then letters, digits, `-`, `_`. */
export const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;

/** A name or a project that cannot take a new function. */
export class ScaffoldError extends Error {
  override name = "ScaffoldError";
}

/** The new function's deno.json: its import map, npm only. */
export const DENO_JSON = JSON.stringify(
  {
    imports: {
      "@supabase/functions-js/edge-runtime.d.ts":
        "npm:@supabase/functions-js@2/src/edge-runtime.d.ts",
      "@supabase/server": "npm:@supabase/server@1",
    },
  },
  null,
  2,
) + "\n";

/** The new function's index.ts (the CLI template's handler). */
export function indexTs(name: string): string {
  return `// Types of the hosted runtime's globals (EdgeRuntime, the worker events), from npm.
import type {} from "@supabase/functions-js/edge-runtime.d.ts";
import { withSupabase } from "@supabase/server";

// Callers need an API key: publishable for clients, secret for server-to-server calls.
export default {
  fetch: withSupabase({ auth: ["publishable", "secret"] }, async (req, _ctx) => {
    const { name } = await req.json();
    return Response.json({ message: \`Hello \${name}!\` });
  }),
};

/* To invoke locally (deno task dev):

  curl -i -X POST 'http://127.0.0.1:54321/functions/v1/${name}' \\
    -H "apikey: <publishable key from the banner>" \\
    -H 'content-type: application/json' --data '{"name":"Functions"}'
*/
`;
}

/** The config.toml block, as `supabase functions new` appends it. */
export function configBlock(name: string): string {
  return `
[functions.${name}]
enabled = true
verify_jwt = false
import_map = "./functions/${name}/deno.json"
# Uncomment to specify a custom file path to the entrypoint.
# Supported file extensions are: .ts, .js, .mjs, .jsx, .tsx
entrypoint = "./functions/${name}/index.ts"
`;
}

/** Writes the function into `<workdir>/supabase`; returns the files it wrote. */
export async function scaffoldFunction(workdir: string, name: string): Promise<string[]> {
  if (!FUNCTION_NAME.test(name)) {
    throw new ScaffoldError(
      `invalid function name "${name}": start with a letter, then letters, digits, - or _ ` +
        `(at most 63 characters)`,
    );
  }
  const supabaseDir = join(workdir, "supabase");
  const configFile = join(supabaseDir, "config.toml");
  if (!(await exists(configFile))) {
    throw new ScaffoldError(`no ${configFile}: run it in a project (npx supabase@3 init)`);
  }
  const dir = join(supabaseDir, "functions", name);
  if (await exists(dir)) throw new ScaffoldError(`function "${name}" already exists: ${dir}`);
  const config = await Deno.readTextFile(configFile);
  if (new RegExp(`^\\[functions\\.${name.replaceAll("-", "\\-")}\\]`, "m").test(config)) {
    throw new ScaffoldError(`config.toml already has a [functions.${name}] block`);
  }
  await Deno.mkdir(dir, { recursive: true });
  const files = [join(dir, "index.ts"), join(dir, "deno.json"), configFile];
  await Deno.writeTextFile(files[0]!, indexTs(name));
  await Deno.writeTextFile(files[1]!, DENO_JSON);
  await Deno.writeTextFile(configFile, config.replace(/\n*$/, "\n") + configBlock(name));
  return files;
}
