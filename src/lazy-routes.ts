import type { OpenAPIHono } from "@hono/zod-openapi";
import { Hono, type Context, type Handler, type NotFoundHandler } from "hono";

// Routes only some requests need (the dashboard; the API's route groups), loaded by the first request they take instead of at
// every HTTP worker's start. The app's middleware runs first as for any route (request id, audit, auth, limits);
// the routes then answer as a Hono app of their own, given the request's variables (principal, client address…),
// the same server (c.env, for the client's address), the app's way of reading paths, and the app's answers for a
// path they do not route; what they throw goes on to the app's error handler.

/** Options of {@link mountLazy}. */
export type LazyRoutesOptions = {
  /** Builds the routes (relative to the prefix), importing their modules; called once, on the first request. */
  load: () => Promise<Hono<any>>;
  /** The app's path reading (src/compat: no trailing slash, old aliases). */
  getPath: (request: Request) => string;
  /** Answers a path under the prefix that the routes do not know, given their routes (404, or 405 with Allow). */
  notFound: (routes: () => { method: string; path: string }[]) => NotFoundHandler;
};

/**
 * Mounts routes at `prefix` (the prefix itself and everything under it), loaded on first use.
 * @example mountLazy(app, "/ui", { load: async () => (await import("./ui/routes.tsx")).uiRoutes(db, opts), getPath, notFound })
 */
export function mountLazy(app: Hono<any>, prefix: string, opts: LazyRoutesOptions) {
  let loaded: Promise<Forward> | undefined;
  const handler: Handler = async (c) => {
    // A failed load is not kept: the next request tries again.
    const forward = await (loaded ??= opts
      .load()
      .then((routes) => forwarder(opts.getPath, prefix, routes, (sub) => opts.notFound(() => sub.routes)))
      .catch((err) => {
        loaded = undefined;
        throw err;
      }));
    const { res } = await forward(c);
    // Answered through the app's context, as the routes' own answers were before they were lazy: a middleware that
    // watches the context's answers sees it (idempotency's pending write keeps the final answer it made).
    return c.newResponse(res.body, res);
  };
  app.all(prefix, handler);
  app.all(`${prefix}/*`, handler);
}

/** Lets the routes answer the request of an app's context: the request handed over, and their answer. */
type Forward = (c: Context) => Promise<{ req: Request; res: Response }>;

/**
 * `routes` mounted at `base` in a Hono app of their own, answering a request of the app's: given the request's variables
 * (principal, client address…), the same server (c.env, for the client's address), `getPath`, and `notFound` for a
 * path they do not route; what they throw goes on to the app's error handler.
 */
function forwarder(
  getPath: (request: Request) => string,
  base: string,
  routes: Hono<any>,
  notFound: (sub: Hono<any>) => NotFoundHandler,
): Forward {
  // The request's context, for the routes' own: keyed by the Request object handed over.
  const parents = new WeakMap<Request, Context>();
  const sub = new Hono<any>({ getPath });
  sub.use(async (c, next) => {
    const parent = parents.get(c.req.raw);
    if (parent) for (const [k, v] of Object.entries(parent.var)) c.set(k as never, v as never);
    await next();
  });
  sub.route(base, routes);
  sub.notFound(notFound(sub));
  // The app's error handler answers: rethrown, the error leaves sub.fetch and reaches it through the app's handler.
  sub.onError((err) => {
    throw err;
  });
  return async (c) => {
    // A middleware that read the body (an Idempotency-Key on a form post) leaves Hono's copy of it, not the stream.
    const req = c.req.raw.bodyUsed ? new Request(c.req.raw, { body: await c.req.arrayBuffer() }) : c.req.raw;
    parents.set(req, c);
    return { req, res: await sub.fetch(req, c.env) };
  };
}

/**
 * A route group: routes with full paths from the app's root (an OpenAPIHono, so the OpenAPI document can take its
 * definitions), built by `load`, which imports their modules (`require`: createApp stays synchronous). Called once.
 */
export type RouteGroup = () => OpenAPIHono<any>;

/** Each group's routes (method and path template, as Hono lists them), in the groups' order: the start bundle's routes.json. */
export type RouteTable = { method: string; path: string }[][];

// The route table each app's groups were mounted with.
const tables = new WeakMap<Hono<any>, RouteTable>();

/** The route table `app`'s groups were mounted with (by {@link mountGroups}; empty when it mounted none). */
export function routeTableOf(app: Hono<any>): RouteTable {
  return tables.get(app) ?? [];
}

function routesOf(app: Hono<any>): { method: string; path: string }[] {
  const seen = new Set<string>();
  return app.routes.flatMap(({ method, path }) =>
    seen.has(`${method} ${path}`) ? [] : (seen.add(`${method} ${path}`), [{ method, path }]),
  );
}

/** Options of {@link mountGroups}. */
export type RouteGroupsOptions = {
  /** The groups' routes without loading them (the start bundle's); unset, every group is loaded now to read them. */
  table?: RouteTable;
  /** The app's path reading (src/compat: no trailing slash, old aliases). */
  getPath: (request: Request) => string;
};

/**
 * Mounts route groups, each loaded by the first request one of its routes takes: each method and path template a
 * group routes gets a handler that loads the group and lets it answer, so the app's middleware sees the route's own
 * template (metrics, audit) and parameters. Another method on the path goes to the app's not-found answer, which needs
 * every group's routes (the returned `routes()`) for its Allow.
 * @example const groups = mountGroups(app, [() => require("./sites/routes.ts").sitesRoutes(db)], { getPath: compatPath })
 */
export function mountGroups(app: Hono<any>, groups: RouteGroup[], opts: RouteGroupsOptions) {
  const routers: (OpenAPIHono<any> | undefined)[] = [];
  const routerOf = (i: number) => (routers[i] ??= groups[i]!());
  const table = opts.table ?? groups.map((_, i) => routesOf(routerOf(i)));
  if (table.length !== groups.length) throw new Error(`the route table has ${table.length} groups, the app ${groups.length}`);
  tables.set(app, table);
  // Requests a group's routes did not take (its not-found answer ran): they go on to the app's.
  const unrouted = new WeakSet<Request>();
  const notFound = (): NotFoundHandler => (c) => {
    unrouted.add(c.req.raw);
    return c.body(null, 404);
  };
  table.forEach((routes, i) => {
    let forward: Forward | undefined;
    const handler: Handler = async (c, next) => {
      forward ??= forwarder(opts.getPath, "/", routerOf(i), notFound);
      const { req, res } = await forward(c);
      if (unrouted.has(req)) return next();
      return c.newResponse(res.body, res);
    };
    // The group's routes by method, as the app had them (a middleware's pattern, `ALL` or with `*`, is not one): the
    // same shapes for Hono's router, and another method on a path goes to the app's not-found answer without a load.
    const methods = new Map<string, string[]>();
    for (const r of routes)
      if (r.method !== "ALL" && !r.path.includes("*")) methods.set(r.path, [...(methods.get(r.path) ?? []), r.method]);
    for (const [path, ms] of methods) app.on(ms, path, handler);
  });
  return {
    /** Every group's routes, loaded or not. */
    routes: () => table.flat(),
    /** Every group's routes, each group loaded (for the OpenAPI document). */
    loaded: () => groups.map((_, i) => routerOf(i)),
  };
}
