/**
 * `deno task token [--sub ID] [--email E] [--role R] [--ttl S]`: prints a user
 * JWT signed with the local stack's key (the one its JWKS publishes), shaped
 * like a Supabase Auth access token.
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "./common/mod.ts";
import {
  loadOrCreateLocalKeys,
  loadProjectConfig,
  PROJECT_ROOT,
  signUserToken,
} from "./project/mod.ts";

/** The issuer base URL: the running stack's, else config.toml's API port. */
async function supabaseUrl(dataDir: string, workdir: string, port?: string): Promise<string> {
  if (port) return `http://127.0.0.1:${port}`;
  try {
    const state = JSON.parse(await Deno.readTextFile(join(dataDir, "dev.json")));
    if (typeof state.url === "string") return state.url;
  } catch { /* stack not running */ }
  const config = await loadProjectConfig(workdir);
  return `http://127.0.0.1:${config.apiPort ?? 54321}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      sub: { type: "string" },
      email: { type: "string" },
      role: { type: "string" },
      ttl: { type: "string" },
      port: { type: "string" },
      workdir: { type: "string" },
      "data-dir": { type: "string" },
    },
  });
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error("--ttl must be a positive integer");
  const workdir = resolve(values.workdir ?? PROJECT_ROOT);
  const dataDir = resolve(values["data-dir"] ?? join(workdir, ".local"));
  const keys = await loadOrCreateLocalKeys(dataDir);
  const token = await signUserToken(keys, {
    supabaseUrl: await supabaseUrl(dataDir, workdir, values.port),
    sub: values.sub,
    email: values.email,
    role: values.role,
    ttlSeconds: ttl,
  });
  console.log(token);
}

try {
  await main();
} catch (error) {
  console.error(`error: ${errorMessage(error)}`);
  Deno.exit(1);
}
