/**
 * What `deno task dev` shows and accepts on the terminal: its flags, the start
 * banner, and the log hold that keeps idle scheduler runs quiet.
 */
export { banner } from "./banner.ts";
export {
  DEV_USAGE,
  type DevOptions,
  FlagError,
  parseDevFlags,
  QUEUE_WORKER_INTERVAL_SECONDS,
} from "./dev_flags.ts";
export { LogHold, type LogSinks } from "./log_hold.ts";
