/** `http`: defineFunction and everything between a Request and its Response. */
export { createAuthenticator } from "./authenticator.ts";
export { DEFAULT_BODY_LIMIT, readBodyBytes, readJsonBody } from "./body.ts";
export { type HandlerContext, type ServeInfo } from "./context.ts";
export { ALLOWED_HEADERS, type CorsPolicy, corsPolicy } from "./cors.ts";
export {
  defineFunction,
  type EdgeFunction,
  type FunctionDeps,
  type FunctionSpec,
} from "./define_function.ts";
export { type ErrorHandler } from "./pipeline.ts";
export {
  circuitOpenHttpError,
  HttpError,
  type HttpErrorInit,
  type ProblemBody,
  problemResponse,
  toHttpError,
} from "./problem.ts";
export { action, type ActionDef, route, type RouteDef } from "./router.ts";
export { type Output, parseInput, type Schema } from "./validation.ts";
