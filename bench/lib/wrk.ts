/** The HTTP load generator of bench:http: wrk (Debian package `wrk`), parsed. */

/** One wrk run's figures. */
export interface WrkResult {
  rps: number;
  /** Latency percentiles, ms. */
  p50: number;
  p99: number;
  non2xx: number;
  /** Socket errors (connect, read, write, timeout). */
  errors: number;
}

/** Options of {@link wrk}. */
export interface WrkOptions {
  seconds: number;
  threads?: number;
  connections?: number;
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}

/** Runs wrk against `url` with a Lua script for the request; parses its report. */
export async function wrk(url: string, o: WrkOptions): Promise<WrkResult> {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  const lines = [`wrk.method = ${JSON.stringify(o.method ?? "POST")}`];
  if (o.body !== undefined) lines.push(`wrk.body = ${JSON.stringify(o.body)}`);
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  }
  await Deno.writeTextFile(script, lines.join("\n") + "\n");
  try {
    const out = await new Deno.Command("wrk", {
      args: [
        `-t${o.threads ?? 1}`,
        `-c${o.connections ?? 32}`,
        `-d${o.seconds}s`,
        "--latency",
        "-s",
        script,
        url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr).trim() || text}`);
    }
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
    const ms = (p: string) => {
      const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(text);
      if (!m) return NaN;
      return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
    };
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
    const errors = sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
    return { rps, p50: ms("50"), p99: ms("99"), non2xx, errors };
  } finally {
    await Deno.remove(script);
  }
}
