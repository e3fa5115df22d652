/**
 * The shared module's public surface: the one import for functions (HTTP, auth
 * types, queue, workflows, events, resilience). Each folder's own mod.ts lists its surface; moving
 * a file inside a folder touches nothing outside it.
 *
 * @example
 * import { action, defineFunction, HttpError } from "../_shared/mod.ts";
 */
export * from "./http/mod.ts";
export { type AuthContext, AuthError, type AuthMode, JwksUnavailableError } from "./auth/mod.ts";
export * from "./core/mod.ts";
export * from "./events/mod.ts";
export * from "./queue/mod.ts";
export * from "./resilience/mod.ts";
export * from "./workflows/mod.ts";
