/** Input validation: a zod schema's verdict as a 422 with one field error per issue. */
import type { z } from "npm:zod@4";
import { fieldErrors } from "../core/json_pointer.ts";
import { HttpError } from "./problem.ts";

/** Validates `value` against `schema`, throwing 422 with field errors rooted at `base`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, base: string) {
  const result = schema.safeParse(value);
  if (result.success) return result.data as z.output<S>;
  throw new HttpError({
    status: 422,
    code: "validation_failed",
    detail: "The request does not match the schema.",
    errors: fieldErrors(result.error.issues, base),
  });
}
