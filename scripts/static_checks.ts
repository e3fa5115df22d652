/**
 * The static checks, in one place so `deno task check` and `deno task test` run
 * exactly the same ones: deno fmt --check, deno lint, deno check of the project,
 * and each function entrypoint type-checked on its own (as
 * `supabase functions deploy` sees it: with the function's own import map, by
 * the CLI's precedence (local/functions/import_map.ts), never the project's config).
 * The functions are the ones the local stack serves and the CLI deploys
 * (local/functions/registry.ts): config.toml `entrypoint`s honoured,
 * `enabled = false` ones skipped, as `supabase functions deploy` skips them;
 * their code is still type-checked by the project-wide check.
 */
import { isDirectory } from "../local/common/mod.ts";
import { discoverFunctions, importMapFlags } from "../local/functions/mod.ts";
import { loadProjectConfig } from "../local/project/mod.ts";

/** One check: a name for the report and the `deno` arguments that run it. */
export interface StaticCheck {
  name: string;
  args: string[];
}

/** What a check produced: its name, whether it passed, and its output. */
export interface StaticCheckResult {
  name: string;
  ok: boolean;
  output: string;
}

/** The checks for the project in `root`, in the order they run. */
export async function staticChecks(root: string): Promise<StaticCheck[]> {
  const checks: StaticCheck[] = [
    { name: "deno fmt --check", args: ["fmt", "--check"] },
    { name: "deno lint", args: ["lint"] },
    { name: "deno check (project)", args: ["check", "--quiet", "."] },
  ];
  if (!(await isDirectory(root))) throw new Error(`no project folder at ${root}`);
  for (const fn of await discoverFunctions(root, await loadProjectConfig(root))) {
    checks.push({
      name: `deno check ${fn.name} standalone`,
      args: ["check", "--quiet", ...importMapFlags(fn.importMap), fn.entrypoint],
    });
  }
  return checks;
}

/**
 * Runs every check in `root` (all of them, even after a failure, so one run
 * reports every problem) and hands each result to `report` as it finishes.
 */
export async function runStaticChecks(
  root: string,
  report: (result: StaticCheckResult) => void,
  deno: string = Deno.execPath(),
): Promise<StaticCheckResult[]> {
  const results: StaticCheckResult[] = [];
  for (const check of await staticChecks(root)) {
    const out = await new Deno.Command(deno, {
      args: check.args,
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    const result = {
      name: check.name,
      ok: out.success,
      output: (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim(),
    };
    results.push(result);
    report(result);
  }
  return results;
}
