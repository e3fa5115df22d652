/**
 * Optional OTLP export of spans (requests, job runs) with OpenTelemetry's own
 * OTLP/HTTP exporter, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The spans
 * carry the same W3C ids as the log lines. The exporter packages are loaded on
 * the first flush, so a function without the variable never loads them (cold
 * start), and a failed export is logged once per flush, never thrown.
 *
 * It loads the exporter's browser build, whose transport is `fetch`. The package's
 * Node build sends with `node:http` and `node:zlib` from CommonJS, and a bundler
 * then puts `node:module` (`createRequire`) in the chunk every entry loads, which
 * starts Deno's Node compatibility layer in every bundled start. With code splitting
 * that made `api` start in 1.96x a hello-world's CPU instead of 1.36x
 * (`deno task bench:cold`, docs/benchmarks.md).
 */
import { describeError } from "./errors.ts";
import type { WarnLog } from "./log.ts";
import type { TraceContext } from "./trace.ts";

/** What a finished span was. */
export interface FinishedSpan {
  trace: TraceContext;
  name: string;
  kind: "server" | "consumer" | "client" | "internal";
  startMs: number;
  endMs: number;
  /** Set when the work failed. */
  error?: string;
  attributes?: Record<string, string | number | boolean>;
}

/** Collects finished spans and sends them in batches. */
export interface SpanExporter {
  /** Buffers a span; returns the flush it scheduled, if any (hand it to `waitUntil`). */
  record(span: FinishedSpan): Promise<void> | undefined;
  /** Sends what is buffered (call before the isolate ends). */
  flush(): Promise<void>;
}

const KIND = { internal: 0, server: 1, client: 2, consumer: 4 } as const;
const BATCH = 200;
const FLUSH_AFTER_MS = 1_000;

const hrTime = (ms: number): [number, number] => {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
};

/** An exporter to `${endpoint}/v1/traces` (OTLP/HTTP, JSON) for service `service`. */
export function otlpExporter(endpoint: string, service: string, log: WarnLog): SpanExporter {
  let buffer: FinishedSpan[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let send: ((spans: FinishedSpan[]) => Promise<void>) | undefined;
  let scheduled: (() => void) | undefined;
  const url = endpoint.replace(/\/+$/, "") + "/v1/traces";

  const load = async () => {
    const [{ OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
      // The browser build: its transport is fetch, not the Node build's node:http one
      // (see the header).
      import(
        "npm:@opentelemetry/exporter-trace-otlp-http@0.208/build/src/platform/browser/index.js"
      ),
      import("npm:@opentelemetry/resources@2"),
    ]);
    // Headers given: the exporter then never probes navigator.sendBeacon and sends with fetch.
    const exporter = new OTLPTraceExporter({ url, headers: {} });
    const resource = resourceFromAttributes({ "service.name": service });
    const scope = { name: "supabase-starter" };
    return (spans: FinishedSpan[]) =>
      new Promise<void>((resolve, reject) => {
        const readable = spans.map((s) => ({
          name: s.name,
          kind: KIND[s.kind],
          spanContext: () => ({
            traceId: s.trace.traceId,
            spanId: s.trace.spanId,
            traceFlags: parseInt(s.trace.flags, 16),
          }),
          parentSpanContext: s.trace.parentSpanId === undefined ? undefined : {
            traceId: s.trace.traceId,
            spanId: s.trace.parentSpanId,
            traceFlags: parseInt(s.trace.flags, 16),
          },
          startTime: hrTime(s.startMs),
          endTime: hrTime(s.endMs),
          duration: hrTime(s.endMs - s.startMs),
          status: s.error === undefined ? { code: 1 } : { code: 2, message: s.error },
          attributes: s.attributes ?? {},
          links: [],
          events: [],
          ended: true,
          resource,
          instrumentationScope: scope,
          droppedAttributesCount: 0,
          droppedEventsCount: 0,
          droppedLinksCount: 0,
        }));
        // deno-lint-ignore no-explicit-any
        exporter.export(readable as any, (result: { code: number; error?: unknown }) => {
          if (result.code === 0) resolve();
          else reject(result.error ?? new Error("OTLP export failed"));
        });
      });
  };

  const flush = async () => {
    clearTimeout(timer);
    timer = undefined;
    const settle = scheduled;
    scheduled = undefined;
    const spans = buffer;
    buffer = [];
    try {
      if (spans.length === 0) return;
      send ??= await load();
      await send(spans);
    } catch (error) {
      log.warn("OTLP export failed", { url, spans: spans.length, error: describeError(error) });
    } finally {
      // The scheduled flush's promise (held by waitUntil) settles with whichever flush ran.
      settle?.();
    }
  };

  return {
    record(span) {
      buffer.push(span);
      if (buffer.length >= BATCH) return flush();
      if (timer !== undefined) return undefined;
      const { promise, resolve } = Promise.withResolvers<void>();
      scheduled = resolve;
      timer = setTimeout(() => void flush(), FLUSH_AFTER_MS);
      return promise;
    },
    flush,
  };
}
