/**
 * The functions the stack serves: which ones (supabase/functions and
 * config.toml), the environment they get, one process each (host.ts is the
 * program that process runs), the pool that starts, restarts and hot-reloads
 * them, and the watcher that says which ones a change touched.
 */
export { functionEnv, type FunctionEnvOptions, PASSTHROUGH } from "./env.ts";
export { type Acquired, FunctionPool } from "./pool.ts";
export { FunctionProcess, type ProcessState, type SpawnOptions } from "./process.ts";
export {
  discoverFunctions,
  type DiscoverOptions,
  sameSpec,
  type ServedFunction,
} from "./registry.ts";
export {
  ImportMapError,
  importMapFlags,
  type ImportMapSource,
  type ResolvedImportMap,
  resolveImportMap,
} from "./import_map.ts";
export { permissionFlags, readableDirs, sharedDirs } from "./sandbox.ts";
export { type Affected, affectedFunctions, watchForChanges } from "./watcher.ts";
