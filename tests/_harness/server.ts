/** Serves a handler on 127.0.0.1 (free port) for real-HTTP tests. */

/** A running loopback server. */
export interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts `handler` on 127.0.0.1; `close()` (or `await using`) stops it. */
export function serve(handler: (req: Request) => Response | Promise<Response>): TestServer {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  const port = server.addr.port;
  const close = async () => {
    await server.shutdown();
  };
  return { url: `http://127.0.0.1:${port}`, port, close, [Symbol.asyncDispose]: close };
}
