import type { MiddlewareHandler } from "hono";

// What the app and the server need of the dashboard before its first page is asked for: the dashboard itself
// (src/ui/routes.tsx and its pages) is loaded by the first request under /ui (src/lazy-routes.ts).

/**
 * Runs before the auth middleware: a page that needs a key the browser did not present (no cookie, or a
 * revoked one) goes to the login page instead of getting the API's JSON 401.
 */
export const uiLoginRedirect: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status === 401 && c.req.method === "GET" && !c.req.path.endsWith("/stream")) {
    const url = new URL(c.req.url);
    c.res = new Response(null, { status: 303, headers: { location: `/ui/login?next=${encodeURIComponent(url.pathname + url.search)}` } });
  }
};

/** Open event streams, so a draining worker can end them instead of waiting for their clients. */
export const openStreams = new Set<() => void>();

/** Ends every open event stream of this process (at shutdown: the server then drains at once). */
export function closeLiveStreams() {
  for (const stop of openStreams) stop();
}
