/**
 * The gateway's TCP front. Deno.serve has no limit on how long a client may
 * take to send a request head (denoland/deno#3515), so a client dribbling
 * header bytes held a connection for as long as it liked. The front accepts
 * connections itself, relays their bytes to the gateway's Deno.serve on a
 * private loopback port, and closes a connection that has no request in
 * progress and has not delivered a complete head within `headTimeoutMs`.
 * Bodies are relayed chunk by chunk, so streaming works both ways, and a
 * request in progress is never cut by this limit.
 *
 * The front also answers a request that the HTTP server dropped without
 * dispatching it (hyper closes silently when a malformed chunked body arrives
 * with the head), so the client gets a 400 problem instead of a bare close.
 */
import { rawGatewayProblem } from "./problem.ts";

/**
 * Given to the handler with each request. A response whose body streams (a
 * function's) must say so, or the head limit would start while it is still
 * being sent; any other response counts as sent when the handler returns.
 * (Wrapping every body instead would make Deno drop the answer to a client
 * that half-closed mid-body.)
 */
export interface ResponseStreaming {
  /** Marks the response as streaming; call the returned function when its body ends. */
  begin(): () => void;
}

/** Options for {@link serveWithFront}. */
export interface FrontOptions {
  hostname: string;
  /** 0 = any free port. */
  port: number;
  /** How long a connection with no request in progress may take to send a complete head. */
  headTimeoutMs: number;
  handler: (req: Request, streaming: ResponseStreaming) => Response | Promise<Response>;
}

/** A listening front. */
export interface Front {
  port: number;
  /** Stops accepting, lets requests in progress finish, then closes every connection. */
  shutdown(): Promise<void>;
}

/** One client connection and its relay to the inner server. */
class Relay {
  /** Requests the inner server dispatched whose responses are not done yet. */
  active = 0;
  /** Bytes of a request arrived since the last response was done (a head is in progress). */
  headStarted = false;
  /** The inner server wrote something since that head started. */
  answered = false;
  closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly client: Deno.Conn,
    readonly upstream: Deno.Conn,
    readonly headTimeoutMs: number,
    readonly onClose: () => void,
  ) {
    this.#arm();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#headTimedOut(), this.headTimeoutMs);
  }

  async #headTimedOut(): Promise<void> {
    if (this.active > 0 || this.closed) return;
    if (this.headStarted) {
      await this.answer({
        status: 408,
        code: "request_head_timeout",
        title: "Request Timeout",
        detail: `no complete request head within ${this.headTimeoutMs} ms`,
      });
    }
    this.close();
  }

  requestStarted(): void {
    this.active++;
    clearTimeout(this.#timer);
  }

  requestDone(): void {
    this.active--;
    if (this.active > 0 || this.closed) return;
    this.headStarted = false;
    this.#arm();
  }

  clientBytes(): void {
    if (this.active === 0 && !this.headStarted) {
      this.headStarted = true;
      this.answered = false;
    }
  }

  /** Writes a problem straight to the client (nothing else is being written to it). */
  async answer(problem: Parameters<typeof rawGatewayProblem>[0]): Promise<void> {
    try {
      await writeAll(this.client, await rawGatewayProblem(problem, crypto.randomUUID()));
    } catch { /* the client is gone */ }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.#timer);
    for (const conn of [this.client, this.upstream]) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    this.onClose();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await conn.write(bytes.subarray(offset));
}

/** Serves `handler` behind the front on `hostname:port`. Throws AddrInUse like Deno.serve. */
export function serveWithFront(options: FrontOptions): Front {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const relays = new Map<number, Relay>();
  let stopping = false;
  const inner = serveInner(options.handler, relays);
  const accepting = (async () => {
    for await (const conn of listener) {
      void relayConnection(conn, inner.addr.port, relays, options.headTimeoutMs, () => stopping);
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    async shutdown() {
      stopping = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      await accepting;
      // Connections without a request in progress have nothing to finish.
      for (const relay of [...relays.values()]) if (relay.active === 0) relay.close();
      await inner.shutdown();
      for (const relay of [...relays.values()]) relay.close();
    },
  };
}

/**
 * The gateway's Deno.serve on a private loopback port. Each request is counted
 * on its relay (found by the relay's local port) until its response is done.
 */
function serveInner(
  handler: FrontOptions["handler"],
  relays: Map<number, Relay>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      const relay = relays.get(info.remoteAddr.port);
      relay?.requestStarted();
      let streams = false;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        relay?.requestDone();
      };
      try {
        return await handler(req, {
          begin: () => {
            streams = true;
            return end;
          },
        });
      } finally {
        if (!streams) end();
      }
    },
  );
}

/** Relays one client connection to the inner server, both ways, until either side ends. */
async function relayConnection(
  client: Deno.Conn,
  innerPort: number,
  relays: Map<number, Relay>,
  headTimeoutMs: number,
  stopping: () => boolean,
): Promise<void> {
  let upstream: Deno.Conn;
  try {
    upstream = await Deno.connect({ hostname: "127.0.0.1", port: innerPort });
  } catch {
    client.close();
    return;
  }
  const key = (upstream.localAddr as Deno.NetAddr).port;
  const relay = new Relay(client, upstream, headTimeoutMs, () => relays.delete(key));
  relays.set(key, relay);
  const toInner = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (let n; (n = await client.read(buffer)) !== null;) {
      relay.clientBytes();
      await writeAll(upstream, buffer.subarray(0, n));
    }
    // The client finished sending; it may still be waiting for the answer.
    await upstream.closeWrite();
  })().catch(() => relay.close()); // a reset client: nothing more to relay either way
  const toClient = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (let n; (n = await upstream.read(buffer)) !== null;) {
      relay.answered = true;
      await writeAll(client, buffer.subarray(0, n));
    }
    if (relay.headStarted && !relay.answered && relay.active === 0 && !stopping()) {
      await relay.answer({
        status: 400,
        code: "malformed_request",
        title: "Bad Request",
        detail: "the request could not be read (malformed head or body framing)",
      });
    }
  })();
  await toClient.catch(() => {});
  relay.close();
  await toInner;
}
