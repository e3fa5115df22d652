/**
 * `core`: environment, logging, database, time, errors, readiness and runtime
 * hooks. Imports nothing above it.
 */
export {
  createDatabase,
  type Database,
  DatabaseError,
  type DatabaseErrorCode,
  type DatabaseOptions,
  type DbCaller,
  isConnectionError,
  isDataError,
  type Sql,
  sqlState,
  type TransactionSql,
} from "./db.ts";
export { type ClientIpPolicy, type Env, EnvError, readEnv } from "./env.ts";
export {
  describeError,
  ERROR_TEXT_LIMIT,
  errorMessage,
  isInstance,
  LayerError,
  safeGet,
} from "./errors.ts";
export { escapePointerToken, type FieldError, fieldErrors, plainPath } from "./json_pointer.ts";
export {
  createLogger,
  errorFields,
  type Logger,
  type LogLevel,
  type LogSink,
  type WarnLog,
} from "./log.ts";
export { isLocalhostName, isLoopbackHost } from "./net.ts";
export {
  type CheckResult,
  type CheckStatus,
  createReadiness,
  type HealthBody,
  postgresCheck,
  type ReadinessCheck,
} from "./readiness.ts";
export { defaultWaitUntil, onBeforeUnload } from "./runtime.ts";
export { type FinishedSpan, otlpExporter, type SpanExporter } from "./otlp.ts";
export {
  continueTrace,
  injectTrace,
  newSpanId,
  newTraceId,
  parseTraceparent,
  parseTracestate,
  type TraceContext,
  traceFields,
  type Traceparent,
  traceparentOf,
  TRACESTATE_MAX,
} from "./trace.ts";
export {
  abortable,
  type Clock,
  deadlines,
  DeadlineSignals,
  isDeadlineReason,
  sleep,
  withTimeout,
} from "./time.ts";
