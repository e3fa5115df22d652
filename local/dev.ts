/**
 * `deno task dev`: the local stack without Docker. Embedded Postgres (or
 * SUPABASE_DB_URL), migrations, the functions gateway on 127.0.0.1:54321,
 * local auth keys, the queue-worker schedule and hot reload, in one process
 * tree that Ctrl-C or SIGTERM stops cleanly. See docs/local-stack.md.
 */
import { banner, DEV_USAGE, FlagError, parseDevFlags } from "./cli/mod.ts";
import { errorMessage } from "./common/mod.ts";
import { MigrationError } from "./database/mod.ts";
import { ConfigError, EnvFileError, PortInUseError, signUserToken } from "./project/mod.ts";
import { startStack } from "./stack.ts";

const time = () => new Date().toISOString().slice(11, 23);
const log = (line: string) => console.log(`${time()} ${line}`);

/** Errors whose message is the whole story (no stack trace needed). */
const EXPECTED = [FlagError, ConfigError, MigrationError, PortInUseError, EnvFileError];

async function main(): Promise<number> {
  const options = parseDevFlags(Deno.args, (name) => Deno.env.get(name));
  if (options.help) {
    console.log(DEV_USAGE);
    return 0;
  }
  const stack = await startStack(options, {
    log,
    debug: options.verbose ? (line) => log(`debug ${line}`) : undefined,
    hostEnv: (name) => Deno.env.get(name),
  });
  const token = await signUserToken(stack.keys, { supabaseUrl: stack.url });
  console.log(banner(stack, token));
  const stopped = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stopped.resolve(signal));
  }
  // If whoever started us (a terminal, `deno task`, an IDE) dies, do not live on as an orphan.
  const parent = Deno.ppid;
  const orphanCheck = setInterval(() => {
    if (Deno.ppid !== parent) stopped.resolve("parent exited");
  }, 1000);
  const signal = await stopped.promise;
  clearInterval(orphanCheck);
  log(`${signal}: stopping`);
  const started = performance.now();
  await stack.stop();
  log(`stopped in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  return 0;
}

try {
  Deno.exit(await main());
} catch (error) {
  if (EXPECTED.some((type) => error instanceof type)) {
    console.error(`error: ${errorMessage(error)}`);
  } else {
    console.error("error: the local stack failed to start:", error);
  }
  Deno.exit(1);
}
