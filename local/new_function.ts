/**
 * `deno task new <name> [--workdir <path>]`: a new function in the layout of
 * `supabase functions new`, with npm: imports (see functions/scaffold.ts).
 * A bad name or an existing function is one clear line and exit code 1.
 */
import { relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "./common/mod.ts";
import { scaffoldFunction } from "./functions/scaffold.ts";
import { PROJECT_ROOT } from "./project/mod.ts";

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    strict: true,
    allowPositionals: true,
    options: { workdir: { type: "string" } },
  });
  if (positionals.length !== 1) throw new Error("usage: deno task new <name> [--workdir <path>]");
  const workdir = resolve(values.workdir ?? PROJECT_ROOT);
  const files = await scaffoldFunction(workdir, positionals[0]!);
  for (const file of files) console.log(`wrote ${relative(workdir, file)}`);
  console.log(`deno task dev serves it at /functions/v1/${positionals[0]}`);
  return 0;
}

try {
  Deno.exit(await main());
} catch (error) {
  console.error(`deno task new: ${errorMessage(error)}`);
  Deno.exit(1);
}
