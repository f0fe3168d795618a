import { Hono, type Context, type Handler, type NotFoundHandler } from "hono";

// Routes only some requests need (the dashboard), loaded by the first request under their prefix instead of at
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
  // The request's context, for the routes' own: keyed by the Request object handed over.
  const parents = new WeakMap<Request, Context>();
  let loaded: Promise<Hono<any>> | undefined;
  const build = async () => {
    const routes = await opts.load();
    const sub = new Hono<any>({ getPath: opts.getPath });
    sub.use(async (c, next) => {
      const parent = parents.get(c.req.raw);
      if (parent) for (const [k, v] of Object.entries(parent.var)) c.set(k as never, v as never);
      await next();
    });
    sub.route(prefix, routes);
    sub.notFound(opts.notFound(() => sub.routes));
    // The app's error handler answers: rethrown, the error leaves sub.fetch and reaches it through the handler below.
    sub.onError((err) => {
      throw err;
    });
    return sub;
  };
  const handler: Handler = async (c) => {
    // A failed load is not kept: the next request tries again.
    const sub = await (loaded ??= build().catch((err) => {
      loaded = undefined;
      throw err;
    }));
    // A middleware that read the body (an Idempotency-Key on a form post) leaves Hono's copy of it, not the stream.
    const req = c.req.raw.bodyUsed ? new Request(c.req.raw, { body: await c.req.arrayBuffer() }) : c.req.raw;
    parents.set(req, c);
    // Answered through the app's context, as the routes' own answers were before they were lazy: a middleware that
    // watches the context's answers sees it (idempotency's pending write keeps the final answer it made).
    const res = await sub.fetch(req, c.env);
    return c.newResponse(res.body, res);
  };
  app.all(prefix, handler);
  app.all(`${prefix}/*`, handler);
}
