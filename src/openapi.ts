import { z } from "@hono/zod-openapi";
import type { Hook } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError, errorStatus, type ErrorCode } from "./errors.ts";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional(),
    }),
    detail: z.string().openapi({ description: "The message again, as the original API's `detail`" }),
  })
  .openapi("Error");

const descriptions: Record<number, string> = {
  400: "Invalid request (validation_failed, invalid_json)",
  401: "No valid API key (unauthorized)",
  403: "Not allowed: the key lacks the scope, or protected mode refuses this client (forbidden)",
  404: "Not found",
  409: "Conflict",
  413: "Body larger than 1 MiB (payload_too_large), or an answer past ANALYTICS_MAX_ROWS / ANALYTICS_MAX_BYTES (result_too_large)",
  415: "Body is not JSON",
  429: "Rate limit or per-key concurrency reached (rate_limited, with Retry-After)",
  503: "Database unavailable",
  504: "The request's queries ran past ANALYTICS_TIMEOUT_MS and were stopped (query_timeout)",
};

/** OpenAPI response entries for the given error statuses, all with the Error schema. */
export function errorResponses<const S extends number>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((s) => [s, { description: descriptions[s] ?? "Error", content: { "application/json": { schema: ErrorSchema } } }]),
  ) as Record<S, { description: string; content: { "application/json": { schema: typeof ErrorSchema } } }>;
}

/** A required JSON request body with the given schema. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** An OpenAPI JSON response entry with the given schema. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** Turns a failed zod validation into the API's 400 `validation_failed` error. */
export const validationHook: Hook<any, any, any, any> = (result, c) => {
  if (result.success) return;
  const issues = result.error.issues.map((i) => ({
    path: i.path.map(String).join(".") || result.target,
    message: i.message,
  }));
  const first = issues[0];
  const where = result.target === "json" ? "body" : result.target;
  throw new ApiError("validation_failed", first ? `invalid ${where}: ${first.path}: ${first.message}` : `invalid ${where}`, issues);
};

/** Sets `Link: <this URL with cursor=…>; rel="next"`, keeping the request's other query parameters. */
export function setNextLink(c: Context, cursor: string) {
  const url = new URL(c.req.url);
  url.searchParams.set("cursor", cursor);
  c.header("Link", `<${url.pathname}${url.search}>; rel="next"`);
}
