/**
 * The project on disk: where the checkout is, its `supabase/config.toml`, the
 * functions' dotenv files, the stack's local keys and the ports it binds.
 */
export * from "./config.ts";
export * from "./env_file.ts";
export * from "./keys.ts";
export * from "./port_check.ts";
export * from "./root.ts";
export * from "./limits.ts";
