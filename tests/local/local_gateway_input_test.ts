/**
 * Bad input at the local gateway: malformed percent-encoding in the path, a
 * request body the client fails to deliver, and clients that never finish a
 * request head. Each gets a clear answer (or a closed connection) in the same
 * problem vocabulary as the functions, and nothing else is affected.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4";
import { parseDevFlags } from "../../local/cli/mod.ts";
import { FunctionPool } from "../../local/functions/mod.ts";
import { createGateway } from "../../local/gateway/mod.ts";
import { PLATFORM_LIMITS } from "../../local/project/mod.ts";
import { startStack } from "../../local/stack.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { assertGatewayProblem, eventually, fixtureArgs, tempDir } from "./support/helpers.ts";
import { connect, parseResponse, readUntilClosed, send } from "./support/raw_http.ts";

/** Paths after /functions/v1/ whose percent-encoding is malformed or not UTF-8. */
const MALFORMED = [
  "%",
  "%E0%A4%A",
  "api/%zz",
  "api/%",
  "api%",
  "%2",
  "%%",
  "%zz/x",
  "%C0%AF", // overlong "/"
  "%E0%80%AF", // overlong "/", three bytes
  "%ED%A0%80", // a UTF-16 surrogate
  "%F4%90%80%80", // above U+10FFFF
  "%FF",
  "%80",
  "api/ok/%E0%A4",
  "nope/%C3",
];

/** An oracle independent of decodeURIComponent: `%XX` escapes only, and the bytes are UTF-8. */
function isWellEncoded(path: string): boolean {
  const bytes: number[] = [];
  for (let i = 0; i < path.length; i++) {
    if (path[i] !== "%") {
      bytes.push(path.charCodeAt(i));
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return false;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
    return true;
  } catch {
    return false;
  }
}

/** Random bytes, percent-encoded, then mangled the ways broken clients mangle them. */
const mangledPath = fc.tuple(
  fc.uint8Array({ maxLength: 12 }),
  fc.constantFrom("none", "truncate", "insert-percent", "bad-hex", "drop-percent"),
  fc.nat(),
).map(([bytes, how, at]) => {
  const encoded = [...bytes].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`)
    .join("");
  const i = encoded.length ? at % encoded.length : 0;
  switch (how) {
    case "truncate":
      return encoded.slice(0, i);
    case "insert-percent":
      return encoded.slice(0, i) + "%" + encoded.slice(i);
    case "bad-hex":
      return encoded.slice(0, i) + "z" + encoded.slice(i + 1);
    case "drop-percent":
      return encoded.replace("%", "");
    default:
      return encoded;
  }
});

Deno.test("local gateway: bad paths and bad bodies get 400 problems, never a 500", async (t) => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const logs: string[] = [];
  const options = parseDevFlags(
    [...fixtureArgs(dir.path, freePort()), "--no-cron", "--no-watch"],
    (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined),
  );
  const stack = await startStack(options, {
    log: (line) => logs.push(line),
    hostEnv: (name) => Deno.env.get(name),
  });
  const fn = `${stack.url}/functions/v1`;
  try {
    await t.step("a table of malformed percent-encodings: 400 malformed_path", async () => {
      for (const path of MALFORMED) {
        assert.equal(isWellEncoded(path), false, `oracle: ${path}`);
        const res = await fetch(`${fn}/${path}`);
        await assertGatewayProblem(res, 400, "malformed_path");
      }
    });

    await t.step(
      "random mangled encodings: 400 when malformed, 404 when not, never 500",
      async () => {
        await fc.assert(
          fc.asyncProperty(mangledPath, async (mangled) => {
            // A prefix no fixture function has, so a well-formed path is an unknown function.
            const res = await fetch(`${fn}/zz-nope-${mangled}`);
            if (isWellEncoded(mangled)) await assertGatewayProblem(res, 404, "function_not_found");
            else await assertGatewayProblem(res, 400, "malformed_path");
          }),
          { numRuns: 300 },
        );
        // Under a served function the gateway still refuses to forward a malformed path.
        await fc.assert(
          fc.asyncProperty(mangledPath.filter((p) => !isWellEncoded(p)), async (mangled) => {
            await assertGatewayProblem(await fetch(`${fn}/api/${mangled}`), 400, "malformed_path");
          }),
          { numRuns: 100 },
        );
      },
    );

    const streamHead = "POST /functions/v1/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n";

    await t.step("malformed chunked encoding sent with the head: 400, not 502", async () => {
      using conn = await connect(stack.port);
      await send(conn, `${streamHead}transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`);
      const res = parseResponse(await readUntilClosed(conn));
      const body = await assertGatewayProblem(res, 400);
      assert.ok(
        ["malformed_request", "malformed_request_body"].includes(body.code),
        `code ${body.code}`,
      );
    });

    await t.step("malformed chunk after the function got the request: 400", async () => {
      using conn = await connect(stack.port);
      await send(conn, `${streamHead}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n`);
      await eventually(
        "the request reaches the function",
        () => stack.pool.current("stream")!.inflight > 0 ? true : undefined,
      );
      await send(conn, "not-hex\r\nmore\r\n");
      const res = parseResponse(await readUntilClosed(conn));
      const body = await assertGatewayProblem(res, 400, "malformed_request_body");
      assert.match(body.detail, /request body could not be read/);
    });

    await t.step(
      "a client that stops mid-body gets 400; the log does not blame the function",
      async () => {
        using conn = await connect(stack.port);
        await send(conn, `${streamHead}content-length: 100\r\n\r\nonly-ten!!`);
        await eventually(
          "the request reaches the function",
          () => stack.pool.current("stream")!.inflight > 0 ? true : undefined,
        );
        await conn.closeWrite();
        const res = parseResponse(await readUntilClosed(conn));
        await assertGatewayProblem(res, 400, "malformed_request_body");
        await eventually(
          "the access log line",
          () => logs.some((l) => l.startsWith("POST /functions/v1/stream 400")) ? true : undefined,
        );
        assert.ok(!logs.some((l) => / 50[0-9] /.test(l) && l.includes("/stream")), logs.join("\n"));
        assert.ok(!logs.some((l) => l.startsWith("[stream] crashed")));
      },
    );

    await t.step("the function still serves good requests after the bad ones", async () => {
      const res = await fetch(`${fn}/stream`, { method: "POST", body: "x".repeat(1000) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "1000");
    });
  } finally {
    await stack.stop();
  }
});

Deno.test("local gateway: a slow or silent client cannot hold a connection past --head-timeout", async (t) => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const options = parseDevFlags(
    [...fixtureArgs(dir.path, freePort()), "--no-cron", "--no-watch", "--head-timeout", "0.3"],
    (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined),
  );
  const stack = await startStack(options, { log: () => {}, hostEnv: (n) => Deno.env.get(n) });
  try {
    await t.step("a client dribbling header bytes is answered 408 and closed", async () => {
      using conn = await connect(stack.port);
      await send(conn, "GET /functions/v1/api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ");
      let dribbling = true;
      // The client keeps sending, one byte at a time, as a slowloris client does.
      const dribbler = (async () => {
        while (dribbling) {
          await send(conn, "a").catch(() => dribbling = false);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const raw = await readUntilClosed(conn);
      dribbling = false;
      await dribbler;
      await assertGatewayProblem(parseResponse(raw), 408, "request_head_timeout");
    });

    await t.step("a connection that sends nothing is closed without an answer", async () => {
      using conn = await connect(stack.port);
      assert.equal(await readUntilClosed(conn), "");
    });

    await t.step("a slow request body is not cut by the head limit", async () => {
      using conn = await connect(stack.port);
      await send(
        conn,
        "POST /functions/v1/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
          "transfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n",
      );
      await eventually(
        "the request reaches the function",
        () => stack.pool.current("stream")!.inflight > 0 ? true : undefined,
      );
      // A silent connection opened now is closed once the head limit passed; by
      // then the body above has been in progress for longer than that limit.
      using idle = await connect(stack.port);
      await readUntilClosed(idle);
      await send(conn, "6\r\n world\r\n0\r\n\r\n");
      const res = parseResponse(await readUntilClosed(conn));
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "11");
    });

    await t.step("a long streaming response is not cut by the head limit", async () => {
      using conn = await connect(stack.port);
      await send(conn, "GET /functions/v1/stream/hold HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
      const head = await readUntilClosed(conn, 30_000, "first chunk\n");
      // As above: once a silent connection is closed, the limit has passed.
      using idle = await connect(stack.port);
      await readUntilClosed(idle);
      const released = await fetch(`${stack.url}/functions/v1/stream/release`);
      assert.equal(await released.text(), "released");
      const rest = await readUntilClosed(conn, 30_000, "0\r\n\r\n");
      assert.match(head + rest, /first chunk\n[\s\S]*last chunk\n/);
    });

    await t.step("ordinary requests still work, keep-alive included", async () => {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${stack.url}/functions/v1/api/health`);
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
    });
  } finally {
    await stack.stop();
  }
});

Deno.test("local gateway: every answer of its own is a problem in the shared vocabulary", async (t) => {
  await using dir = await tempDir();
  const base = { jwks: { keys: [] }, functionTimeoutMs: 1000, log: () => {} };
  const url = "http://127.0.0.1/functions/v1/api";
  await t.step("before ready: 503 stack_starting with Retry-After", async () => {
    const pool = new FunctionPool({
      env: {},
      cwd: dir.path,
      limits: PLATFORM_LIMITS,
      policy: "per_worker",
      log: () => {},
    });
    const gateway = createGateway({ ...base, pool, isReady: () => false });
    const res = await gateway(new Request(url));
    assert.equal(res.headers.get("retry-after"), "1");
    await assertGatewayProblem(res, 503, "stack_starting");
  });
  await t.step("a gateway failure: 500 internal_error with CORS, not Deno's bare 500", async () => {
    const logs: string[] = [];
    // A function process cannot be spawned in a folder that does not exist.
    const pool = new FunctionPool({
      env: {},
      cwd: `${dir.path}/missing`,
      limits: PLATFORM_LIMITS,
      policy: "per_worker",
      log: () => {},
    });
    await pool.sync([{
      name: "api",
      entrypoint: `${dir.path}/index.ts`,
      verifyJwt: false,
      dir: dir.path,
      importMap: null,
      sharedDirs: [],
    }])
      .catch(() => {});
    const gateway = createGateway({
      ...base,
      log: (l) => logs.push(l),
      pool,
      isReady: () => true,
    });
    const res = await gateway(new Request(url, { headers: { "x-request-id": "req-1" } }));
    const body = await assertGatewayProblem(res, 500, "internal_error");
    assert.equal(body.requestId, "req-1");
    assert.ok(logs.some((l) => l.startsWith("gateway error on GET /functions/v1/api")));
    await pool.close();
  });
});
