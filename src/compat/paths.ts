import { getPathNoStrict } from "hono/utils/url";

// How the app reads a request's path for routing (src/compat/routes.ts has the old clients' other differences): apart
// from the routes, since every request needs it and the routes are loaded on first use (src/lazy-routes.ts).

/** Old paths routed as the current ones (trailing slash or not): the same handler answers both. */
const aliases = new Map<string, string>(
  Object.entries({
    "/api/v1/ranking-data": "/api/v1/analytics/ranking-data",
    "/api/v1/daily-data": "/api/v1/analytics/ranking-data",
    "/api/v1/ranking-data-hourly": "/api/v1/analytics/ranking-data-hourly",
    // v2's documentation paths (Litestar): the OpenAPI document and the interactive reference.
    "/schema": "/openapi.json",
    "/schema/swagger": "/docs",
  }),
);

/**
 * The app's routing path (Hono's `getPath`): trailing slashes ignored, as before (`strict: false`),
 * and an alias mapped to its current path. Only routing sees the mapped path; the request's URL is kept.
 */
export function compatPath(request: Request): string {
  const path = getPathNoStrict(request);
  // A Map: an object indexed by every request's path went through the engine's dictionary-mode lookups.
  return aliases.get(path) ?? path;
}
