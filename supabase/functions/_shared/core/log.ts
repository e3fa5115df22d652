/**
 * Structured logging: one JSON object per line, which the Supabase log
 * explorer indexes field by field. Fields such as requestId, function, action,
 * status and durationMs are passed by the pipeline.
 */

import { describeError, isInstance, safeGet } from "./errors.ts";

/** Severity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger bound to a minimum level and fixed fields. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
  enabled(level: LogLevel): boolean;
}

/** Where warnings go (a {@link Logger} fits). */
export type WarnLog = Pick<Logger, "warn">;

/** Where lines go; defaults to the console (the platform collects it). */
export type LogSink = (level: LogLevel, line: string) => void;

const consoleSink: LogSink = (level, line) => {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
};

/** Turns an error into loggable fields (name, message, stack, cause); never throws. */
export function errorFields(error: unknown): Record<string, unknown> {
  if (isInstance(error, Error)) {
    const cause = safeGet(error, "cause");
    return {
      error: safeGet(error, "name"),
      message: safeGet(error, "message"),
      stack: safeGet(error, "stack"),
      ...(cause !== undefined ? { cause: describeError(cause) } : {}),
    };
  }
  return { error: describeError(error) };
}

/** Creates a logger. */
export function createLogger(
  level: LogLevel = "info",
  base: Record<string, unknown> = {},
  sink: LogSink = consoleSink,
): Logger {
  const min = RANK[level];
  const write = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[l] < min) return;
    sink(l, JSON.stringify({ level: l, time: new Date().toISOString(), msg, ...base, ...fields }));
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, sink),
    enabled: (l) => RANK[l] >= min,
  };
}
