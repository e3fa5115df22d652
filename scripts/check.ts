/**
 * `deno task check`: the static checks of `deno task test` (see static_checks.ts)
 * without the database and the tests, for a quick answer before committing.
 * Ends with one line, `static checks: N passed, M failed`, and exits 1 on any
 * failure.
 *
 * `--root=<dir>` checks another project folder (the tests use a temp project).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../local/project/mod.ts";
import { runStaticChecks } from "./static_checks.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { root: { type: "string" } },
    strict: true,
  });
  const root = values.root ? resolve(values.root) : PROJECT_ROOT;
  const results = await runStaticChecks(root, ({ name, ok, output }) => {
    if (!ok && output) console.log(output);
    console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  });
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`static checks: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

try {
  Deno.exit(await main());
} catch (error) {
  // A bad flag or an unreadable project: one clear line, not a stack trace.
  console.error(`deno task check: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(2);
}
