/** HTTP/1.1 over a raw TCP socket, for what fetch() cannot send: bad framing, slow heads. */

const encoder = new TextEncoder();

/** Opens a connection to the gateway on 127.0.0.1:`port`. */
export async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/** Writes `text` (latin-1 safe ASCII) to `conn`. */
export async function send(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.byteLength) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Everything the server sent until it closed the connection, or (with `until`)
 * until what was read so far contains that text. Rejects after `deadlineMs`.
 */
export async function readUntilClosed(
  conn: Deno.Conn,
  deadlineMs = 30_000,
  until?: string,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  const decoder = new TextDecoder();
  let text = "";
  const reading = (async () => {
    const buffer = new Uint8Array(16 * 1024);
    while (until === undefined || !text.includes(until)) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        // A reset after the server's last bytes still means "closed by the server".
        if (error instanceof Deno.errors.ConnectionReset) return;
        throw error;
      }
      if (n === null) return;
      chunks.push(buffer.slice(0, n));
      if (until !== undefined) text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`no ${until ? JSON.stringify(until) : "close"} within ${deadlineMs} ms`)),
      deadlineMs,
    );
  });
  try {
    await Promise.race([reading, deadline]);
  } finally {
    clearTimeout(timer);
  }
  return new TextDecoder().decode(concat(chunks));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** Parses the first response in `raw` into a Response (body per content-length or to the end). */
export function parseResponse(raw: string): Response {
  const end = raw.indexOf("\r\n\r\n");
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(raw)}`);
  const [statusLine, ...lines] = raw.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  if (!status) throw new Error(`not an HTTP/1.1 status line: ${statusLine}`);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const length = headers.get("content-length");
  const rest = raw.slice(end + 4);
  const body = headers.get("transfer-encoding") === "chunked"
    ? dechunk(rest)
    : length === null
    ? rest
    : rest.slice(0, Number(length));
  return new Response(body || null, { status, headers });
}

function dechunk(raw: string): string {
  let out = "";
  let offset = 0;
  while (true) {
    const eol = raw.indexOf("\r\n", offset);
    if (eol === -1) throw new Error(`truncated chunked body: ${JSON.stringify(raw)}`);
    const size = parseInt(raw.slice(offset, eol), 16);
    if (!(size >= 0)) throw new Error(`bad chunk size in ${JSON.stringify(raw)}`);
    if (size === 0) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    offset = eol + 2 + size + 2;
  }
}
