import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Hook, RouteConfig } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
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
export const validationHook: Hook<any, any, any, any> = (result, _c) => {
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

type Validated = "query" | "param";
type AnyHook = Hook<any, any, any, any>;

/**
 * A query or path-parameter validator that parses synchronously (zod's safeParse; a schema with async
 * refinements falls back to safeParseAsync) and calls the hook as @hono/zod-validator does, without an
 * async frame, a promise per parse and an object spread per request. Values are read as Hono's
 * validator reads them (a repeated query parameter is an array).
 */
// Query schemas whose parse depends on the query string alone (no defaults computed from the clock or
// other state, no side effects): their successful results are remembered per raw query string.
const memoizable = new WeakSet<z.ZodType>();

/**
 * Marks a query schema as a pure function of the query string: routes created by createRouter with it
 * (and the default validation hook) parse each distinct query string once and reuse the frozen result (a
 * hot list's ~10 µs zod parse becomes a Map lookup). Bounded: the memo is emptied past 1,000 strings.
 */
export function memoizedQuery<S extends z.ZodType>(schema: S): S {
  memoizable.add(schema);
  return schema;
}

/**
 * Marks a path-parameter schema as a pure function of the path (as memoizedQuery for queries): each route
 * created by createRouter with it parses each distinct request path once (a get_one's id parse, ~1.5-3.5 µs
 * in-process, becomes a Map lookup). Same bound: 1,000 paths per route, paths over 200 characters never kept.
 */
export function memoizedParams<S extends z.ZodType>(schema: S): S {
  return memoizedQuery(schema);
}

const MEMO_MAX = 1000;
const MEMO_KEY_MAX = 200;

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** The raw query string of a URL (without `?`; the fragment is never sent). */
function rawQuery(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? "" : url.slice(q + 1);
}

function syncValidator(target: Validated, schema: z.ZodType, hook: AnyHook): MiddlewareHandler {
  const memo = memoizable.has(schema) && hook === validationHook ? new Map<string, object>() : null;
  const settle = (c: Context, value: unknown, result: z.ZodSafeParseResult<unknown>): Response | undefined => {
    const hookResult = hook({ data: value, ...result, target } as never, c as never);
    if (hookResult instanceof Response) return hookResult;
    if (hookResult && typeof hookResult === "object" && "response" in hookResult) return (hookResult as { response: Response }).response;
    if (!result.success) return c.json(result, 400);
    c.req.addValidatedData(target, result.data as object);
    return undefined;
  };
  return function validate(c, next) {
    let key: string | undefined;
    // Long query strings (page cursors: each one is asked once) are parsed every time, never remembered.
    // Path parameters: within one route the path decides them.
    if (memo) {
      key = target === "query" ? rawQuery(c.req.url) : c.req.path;
      if (key.length > MEMO_KEY_MAX) key = undefined;
      const known = key === undefined ? undefined : memo.get(key);
      if (known !== undefined) {
        c.req.addValidatedData(target, known);
        return next();
      }
    }
    const value =
      target === "param"
        ? c.req.param()
        : Object.fromEntries(Object.entries(c.req.queries()).map(([k, v]) => (v.length === 1 ? [k, v[0]] : [k, v])));
    let result: z.ZodSafeParseResult<unknown>;
    try {
      result = schema.safeParse(value);
    } catch (err) {
      if (!(err instanceof z.core.$ZodAsyncError)) throw err;
      // biome-ignore lint/suspicious/noConfusingVoidType: Hono's next() is Promise<void>
      return schema.safeParseAsync(value).then((r): Promise<void | Response> | Response => settle(c, value, r) ?? next());
    }
    const refused = settle(c, value, result);
    if (refused) return Promise.resolve(refused);
    if (memo && key !== undefined && result.success) {
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(key, deepFreeze(result.data as object));
    }
    return next();
  };
}

/**
 * An OpenAPIHono router with the API's validation hook whose query and path-parameter validators run
 * synchronously (see syncValidator); the route is registered in the OpenAPI document exactly as
 * `openapi()` registers it, and bodies, headers and cookies are validated by @hono/zod-openapi as before.
 */
export function createRouter(init: ConstructorParameters<typeof OpenAPIHono>[0] = {}): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook, ...init });
  const original = app.openapi;
  app.openapi = ((
    route: RouteConfig & { middleware?: MiddlewareHandler | MiddlewareHandler[]; hide?: boolean },
    handler: never,
    hook?: AnyHook,
  ) => {
    const { middleware, hide, ...rest } = route;
    const req = rest.request;
    if (!req?.query && !req?.params) return original(route as never, handler, hook as never);
    if (!hide) app.openAPIRegistry.registerPath(rest);
    const effective = hook ?? (init?.defaultHook as AnyHook | undefined) ?? validationHook;
    const fast: MiddlewareHandler[] = [];
    if (req.query) fast.push(syncValidator("query", req.query as z.ZodType, effective));
    if (req.params) fast.push(syncValidator("param", req.params as z.ZodType, effective));
    const own = middleware === undefined ? [] : Array.isArray(middleware) ? middleware : [middleware];
    const { query: _q, params: _p, ...others } = req;
    return original(
      { ...rest, request: Object.keys(others).length > 0 ? others : undefined, hide: true, middleware: [...own, ...fast] } as never,
      handler,
      hook as never,
    );
  }) as typeof app.openapi;
  return app;
}
