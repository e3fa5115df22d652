/** The api function called the way apps call it: supabase-js `functions.invoke`. */
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "npm:@supabase/supabase-js@2";
import { defineFunction, readEnv } from "../../supabase/functions/_shared/mod.ts";
import { apiSpec } from "../../supabase/functions/api/index.ts";
import { makeProject, signToken } from "../_harness/keys.ts";
import { serve } from "../_harness/server.ts";

Deno.test("supabase-js functions.invoke: publishable key, user token, problem+json errors", async () => {
  const project = await makeProject();
  const fn = defineFunction(apiSpec, { env: readEnv((k) => project.env[k]) });
  await using server = serve(fn.fetch);
  const options = { auth: { persistSession: false, autoRefreshToken: false } };

  const anonymous = createClient(server.url, project.publishable, options);
  const echo = await anonymous.functions.invoke("api", {
    body: { action: "echo", payload: { message: "from supabase-js" } },
  });
  assert.equal(echo.error, null);
  assert.deepEqual(echo.data, { data: { message: "from supabase-js" } });

  const token = await signToken(project.es256, { email: "js@example.com" });
  const signedIn = createClient(server.url, project.publishable, {
    ...options,
    accessToken: () => Promise.resolve(token),
  });
  const who = await signedIn.functions.invoke("api", { body: { action: "whoami" } });
  assert.equal(who.error, null);
  assert.equal(who.data.data.email, "js@example.com");
  assert.equal(who.data.data.authMode, "user");

  const bad = await anonymous.functions.invoke("api", {
    body: { action: "echo", payload: { message: "" } },
  });
  assert.ok(bad.error instanceof FunctionsHttpError);
  const response = bad.error.context as Response;
  assert.equal(response.status, 422);
  const problem = await response.json();
  assert.equal(problem.code, "validation_failed");
  assert.equal(problem.errors[0].pointer, "/payload/message");
});
