/** Starts the local stack in-process on a fixture project, with a fresh database, for a test. */
import { join } from "node:path";
import { parseDevFlags } from "../../../local/cli/mod.ts";
import { type Stack, startStack } from "../../../local/stack.ts";
import { freePort, freshDatabase } from "../../_harness/database.ts";
import { eventually, tempDir } from "./helpers.ts";
import { PROJECT_ROOT } from "../../../local/project/mod.ts";

/** A running fixture stack; `await using` stops it and removes its state. */
export interface FixtureStack extends AsyncDisposable {
  stack: Stack;
  /** `<url>/functions/v1`. */
  fn: string;
  /** Every line the stack logged so far. */
  logs: string[];
  /** Waits (generously) until a logged line matches; returns it. */
  waitForLine(pattern: RegExp, what?: string): Promise<string>;
}

/** A fixture project folder under tests/fixtures. */
export const fixtureProject = (name: string) => join(PROJECT_ROOT, "tests", "fixtures", name);

/**
 * A temporary copy of a fixture project with only `functions` (their index.ts)
 * and its config.toml (or `baseToml` instead) with `extraToml` appended;
 * removed on dispose.
 */
export async function fixtureCopy(
  project: string,
  functions: string[],
  extraToml: string,
  baseToml?: string,
): Promise<AsyncDisposable & { path: string }> {
  const dir = await tempDir(`local-${project}-`);
  const from = join(fixtureProject(project), "supabase");
  const to = join(dir.path, "supabase");
  await Deno.mkdir(join(to, "functions"), { recursive: true });
  for (const fn of functions) {
    await Deno.mkdir(join(to, "functions", fn));
    await Deno.copyFile(
      join(from, "functions", fn, "index.ts"),
      join(to, "functions", fn, "index.ts"),
    );
  }
  const config = baseToml ?? await Deno.readTextFile(join(from, "config.toml"));
  await Deno.writeTextFile(join(to, "config.toml"), `${config}\n${extraToml}\n`);
  return dir;
}

/** Starts `deno task dev`'s stack for `workdir` with `args` (no cron, no watch unless asked). */
export async function startFixtureStack(
  workdir: string,
  args: string[] = [],
  hostEnv: Record<string, string> = {},
): Promise<FixtureStack> {
  const db = await freshDatabase();
  const dir = await tempDir("local-fixture-");
  const logs: string[] = [];
  try {
    const options = parseDevFlags(
      [
        "--workdir",
        workdir,
        "--data-dir",
        dir.path,
        "--port",
        String(freePort()),
        "--no-cron",
        "--no-watch",
        ...args,
      ],
      (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined),
    );
    const stack = await startStack(options, {
      log: (line) => logs.push(line),
      hostEnv: (name) => hostEnv[name] ?? Deno.env.get(name),
    });
    return {
      stack,
      fn: `${stack.url}/functions/v1`,
      logs,
      waitForLine: (pattern, what) =>
        eventually(
          what ?? `a log line matching ${pattern}\n${logs.slice(-15).join("\n")}`,
          () => logs.find((l) => pattern.test(l)),
        ),
      [Symbol.asyncDispose]: async () => {
        await stack.stop();
        await dir[Symbol.asyncDispose]();
        await db[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await dir[Symbol.asyncDispose]();
    await db[Symbol.asyncDispose]();
    throw new Error(`stack failed to start: ${error}\n${logs.join("\n")}`);
  }
}
