/** Input validation: a zod schema's verdict as a 422 with one field error per issue. */
import type { z } from "npm:zod@4";
import { fieldErrors } from "../core/json_pointer.ts";
import { HttpError } from "./problem.ts";

/**
 * Any zod 4 schema, from `zod` (`z.object(...)`) or from `zod/mini`: both carry a
 * `safeParse` method. Typed structurally so that the shared core imports no zod
 * at run time, and a function that builds its schemas with the smaller `zod/mini`
 * loads only that (README, "Cold start").
 */
export type Schema = z.core.$ZodType & {
  safeParse(value: unknown):
    | { success: true; data: unknown }
    | { success: false; error: { issues: readonly { path: PropertyKey[]; message: string }[] } };
};

/** The parsed type of a {@link Schema} (`z.output`, for either flavour of zod). */
export type Output<S extends Schema> = z.core.output<S>;

/** Validates `value` against `schema`, throwing 422 with field errors rooted at `base`. */
export function parseInput<S extends Schema>(schema: S, value: unknown, base: string): Output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data as Output<S>;
  throw new HttpError({
    status: 422,
    code: "validation_failed",
    detail: "The request does not match the schema.",
    errors: fieldErrors(result.error.issues, base),
  });
}
