/** `http`: defineFunction and everything between a Request and its Response. */
export { createAuthenticator } from "./authenticator.ts";
export { DEFAULT_BODY_LIMIT, isJsonContentType, readBodyBytes, readJsonBody } from "./body.ts";
export { type HandlerContext, type ServeInfo } from "./context.ts";
export { ALLOWED_HEADERS, type CorsPolicy, corsPolicy, EXPOSED_HEADERS } from "./cors.ts";
export {
  defineFunction,
  type EdgeFunction,
  type FunctionDeps,
  type FunctionSpec,
} from "./define_function.ts";
export { type ErrorHandler } from "./pipeline.ts";
export {
  circuitOpenHttpError,
  type ErrorMapper,
  errorMappers,
  HttpError,
  type HttpErrorInit,
  PROBLEM_TYPE_BASE,
  type ProblemBody,
  problemResponse,
  toHttpError,
} from "./problem.ts";
export { action, type ActionDef, route, type RouteDef } from "./router.ts";
export { parseInput } from "./validation.ts";
