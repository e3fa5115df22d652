/** The stack's domain-free helpers (local/common): path questions, bounded waits, error messages. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  errorMessage,
  exists,
  isDirectory,
  isFile,
  lexists,
  sleep,
  waitAtMost,
} from "../../local/common/mod.ts";

Deno.test("common/fs: files, folders, symlinks and missing paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "starter-common-" });
  try {
    const file = join(dir, "file.txt");
    await Deno.writeTextFile(file, "x");
    const dangling = join(dir, "dangling");
    await Deno.symlink(join(dir, "nothing"), dangling);
    const missing = join(dir, "missing");
    assert.deepEqual(
      await Promise.all([exists(file), lexists(file), isFile(file), isDirectory(file)]),
      [true, true, true, false],
    );
    assert.deepEqual(
      await Promise.all([exists(dir), lexists(dir), isFile(dir), isDirectory(dir)]),
      [true, true, false, true],
    );
    // A dangling link is there for lexists only: stat follows it, lstat does not.
    assert.deepEqual(
      await Promise.all([exists(dangling), lexists(dangling), isFile(dangling)]),
      [false, true, false],
    );
    assert.deepEqual(
      await Promise.all([exists(missing), lexists(missing), isFile(missing), isDirectory(missing)]),
      [false, false, false, false],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("common/async: waitAtMost returns at the bound or earlier, and passes rejections on", async () => {
  const never = new Promise<void>(() => {});
  let started = performance.now();
  await waitAtMost(never, 20);
  assert.ok(performance.now() - started >= 15, "waited for the bound");
  started = performance.now();
  await waitAtMost(Promise.resolve(), 10_000);
  assert.ok(performance.now() - started < 5_000, "did not wait for the bound");
  await assert.rejects(waitAtMost(Promise.reject(new Error("boom")), 10_000), /boom/);
});

Deno.test("common/async: sleep ends early when its signal aborts", async () => {
  const stop = new AbortController();
  const started = performance.now();
  const slept = sleep(10_000, stop.signal);
  stop.abort();
  await slept;
  assert.ok(performance.now() - started < 5_000);
  await sleep(10_000, stop.signal); // already aborted: returns at once
  await sleep(1);
});

Deno.test("common/errors: errorMessage of errors, strings and odd values", () => {
  assert.equal(errorMessage(new TypeError("bad input")), "bad input");
  assert.equal(errorMessage("plain text"), "plain text");
  assert.equal(errorMessage({ message: "shaped like an error" }), "shaped like an error");
  assert.equal(errorMessage(undefined), "undefined");
  assert.equal(errorMessage(null), "null");
  assert.equal(errorMessage(42), "42");
});
