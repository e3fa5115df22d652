/**
 * The local gateway against real function processes (the fixture project) and
 * a real database: routing, the verify_jwt gate, streaming, and the faults a
 * function can cause (import error, crash, hang).
 */
import assert from "node:assert/strict";
import { createLocalJWKSet, jwtVerify } from "npm:jose@6";
import { parseDevFlags } from "../../local/cli/mod.ts";
import { createGateway } from "../../local/gateway/mod.ts";
import { signUserToken } from "../../local/project/mod.ts";
import { startStack } from "../../local/stack.ts";
import { freePort, freshDatabase } from "../_harness/database.ts";
import { assertGatewayProblem, eventually, fixtureArgs, tempDir } from "./support/helpers.ts";

Deno.test("local gateway: routing, verify_jwt, streaming and function faults", async (t) => {
  await using db = await freshDatabase();
  await using dir = await tempDir();
  const logs: string[] = [];
  const options = parseDevFlags([
    ...fixtureArgs(dir.path, freePort()),
    "--no-cron",
    "--no-watch",
  ], (name) => (name === "SUPABASE_DB_URL" ? db.url : undefined));
  // Every step but the hang one runs under the default function timeout: a
  // short one would also cut off healthy answers on a loaded machine.
  const stack = await startStack(options, {
    log: (line) => logs.push(line),
    hostEnv: (name) => Deno.env.get(name),
  });
  const fn = `${stack.url}/functions/v1`;
  try {
    await t.step("the path inside the function starts at /<name>", async () => {
      const res = await fetch(`${fn}/api/health`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).status, "pass");
      const custom = await fetch(`${fn}/custom/a/b?x=1`);
      assert.equal(await custom.text(), "custom /custom/a/b");
    });

    await t.step("unknown and disabled functions are 404 problems", async () => {
      const cases = [
        ["/functions/v1/nope", "function_not_found"],
        ["/functions/v1/disabled", "function_not_found"],
        ["/rest/v1/notes", "not_found"],
      ];
      for (const [path, code] of cases) {
        await assertGatewayProblem(await fetch(`${stack.url}${path}`), 404, code);
      }
    });

    await t.step(
      "a module that throws at import answers 503; the others keep serving",
      async () => {
        const res = await fetch(`${fn}/broken`);
        assert.equal(res.headers.get("retry-after"), "1");
        await assertGatewayProblem(res, 503, "function_unavailable");
        assert.ok(logs.some((l) => l.includes("broken fixture: thrown at import")), "error logged");
        const ok = await fetch(`${fn}/api/health`);
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
      },
    );

    await t.step("a function that hangs past --function-timeout gets 504", async () => {
      // The same gateway over the stack's own function processes, with a short
      // timeout: the fixture never answers, so the 504 is certain at any speed.
      const gateway = createGateway({
        pool: stack.pool,
        jwks: { keys: [] },
        functionTimeoutMs: 1500,
        log: (line) => logs.push(line),
        isReady: () => true,
      });
      const res = await gateway(new Request(`${fn}/hang`));
      const body = await assertGatewayProblem(res, 504, "function_timeout");
      assert.match(body.detail, /1500 ms/);
    });

    await t.step(
      "a crash mid-request is a 502, logged, and the next request restarts it",
      async () => {
        const first = await fetch(`${fn}/crashy`);
        const pidBefore = (await first.text()).split(" ")[1];
        const res = await fetch(`${fn}/crashy/crash`);
        await assertGatewayProblem(res, 502, "function_crashed");
        assert.ok(logs.some((l) => l.startsWith("[crashy] crashed")));
        const again = await fetch(`${fn}/crashy`);
        assert.equal(again.status, 200);
        const pidAfter = (await again.text()).split(" ")[1];
        assert.notEqual(pidAfter, pidBefore);
        const api = await fetch(`${fn}/api/health`);
        assert.equal(api.status, 200, "other functions were not affected");
        await api.body?.cancel();

        // A function that ends itself cleanly is not called a crash, and still comes back.
        const exitPid = (await (await fetch(`${fn}/crashy`)).text()).split(" ")[1];
        assert.equal(await (await fetch(`${fn}/crashy/exit`)).text(), "bye");
        await eventually(
          "the exit logged",
          () => logs.some((l) => l.startsWith("[crashy] exited (exit code 0)")) ? true : undefined,
        );
        assert.equal(logs.filter((l) => l.startsWith("[crashy] crashed")).length, 1);
        const back = await fetch(`${fn}/crashy`);
        assert.notEqual((await back.text()).split(" ")[1], exitPid);
      },
    );

    await t.step("verify_jwt = true: the gateway demands a valid local JWT", async () => {
      await assertGatewayProblem(await fetch(`${fn}/guarded`), 401, "missing_jwt");
      const bad = await fetch(`${fn}/guarded`, { headers: { authorization: "Bearer a.b.c" } });
      await assertGatewayProblem(bad, 401, "invalid_jwt");
      const expired = await signUserToken(stack.keys, {
        supabaseUrl: stack.url,
        now: () => Date.now() - 7200_000,
      });
      const old = await fetch(`${fn}/guarded`, { headers: { authorization: `Bearer ${expired}` } });
      await assertGatewayProblem(old, 401, "invalid_jwt");
      const token = await signUserToken(stack.keys, { supabaseUrl: stack.url });
      const ok = await fetch(`${fn}/guarded`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), "guarded ok");
      // verify_jwt = false: the function decides (here it accepts the publishable key).
      const echo = await fetch(`${fn}/api`, {
        method: "POST",
        headers: { apikey: stack.keys.publishableKeys.default! },
        body: JSON.stringify({ action: "echo", payload: { message: "hi" } }),
      });
      assert.deepEqual(await echo.json(), { data: { message: "hi" } });
    });

    await t.step("JWKS is served and verifies the stack's user tokens", async () => {
      const res = await fetch(`${stack.url}/auth/v1/.well-known/jwks.json`);
      const jwks = await res.json();
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0].d, undefined);
      const token = await signUserToken(stack.keys, { supabaseUrl: stack.url, sub: "s1" });
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks));
      assert.equal(payload.sub, "s1");
    });

    await t.step("response bodies stream through (first chunk arrives while open)", async () => {
      const res = await fetch(`${fn}/stream`);
      const reader = res.body!.getReader();
      const { value } = await reader.read();
      assert.equal(new TextDecoder().decode(value), "first chunk\n");
      await reader.cancel();
    });

    await t.step("request bodies stream through", async () => {
      const chunk = new Uint8Array(64 * 1024).fill(97);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 16) return controller.close();
          sent++;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(`${fn}/stream`, { method: "POST", body });
      assert.equal(await res.text(), String(16 * 64 * 1024));
    });
  } finally {
    await stack.stop();
  }
});
