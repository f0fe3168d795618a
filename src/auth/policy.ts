import type { KeyScope } from "../db/model.ts";

// Which scope each request needs: one table for every route, so a route added later gets the rule of
// its method (GET: read, any other method: write) unless it is listed here.

/**
 * Paths answered without a key in every mode: health for load balancers, the API info and reference
 * pages, the dashboard's login and logout (which only set or clear its cookie) and its static files.
 */
export function isOpenPath(path: string): boolean {
  return (
    path === "/health" ||
    path === "/" ||
    path === "/docs" ||
    path.startsWith("/docs/") ||
    path === "/redoc" ||
    path === "/openapi.json" ||
    path === "/ui/login" ||
    path === "/ui/logout" ||
    // Google's redirect back from the dashboard's sign-in: it completes only with the cookie an admin's start set.
    path === "/ui/google/callback" ||
    path.startsWith("/ui/static/")
  );
}

/** True for a path of the dashboard (where the key may come from its cookie). */
export function isUiPath(path: string): boolean {
  return path === "/ui" || path.startsWith("/ui/");
}

const adminPaths = /^\/api\/v1\/(keys|audit|admin|diagnostics|alerts)(\/|$)/;
const sitePath = /^\/api\/v1\/sites\/[^/]+\/?$/;
const restorePath = /^\/api\/v1\/sites\/[^/]+\/restore\/?$/;
const googleAccountPath = /^\/api\/v1\/google\/accounts\/[^/]+\/?$/;
const uiRemoveAccountPath = /^\/ui\/google\/accounts\/[^/]+\/remove\/?$/;

/** True for methods that never change anything. */
export function isSafeMethod(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

/** The scope a request needs: read (GET), write (create/update, syncs), admin (delete, keys, audit, backups, diagnostics). */
export function requiredScope(method: string, path: string): KeyScope {
  if (adminPaths.test(path)) return "admin";
  if (method === "DELETE" && sitePath.test(path)) return "admin";
  if (method === "POST" && restorePath.test(path)) return "admin";
  // Removing a Google account deletes its sign-in and unbinds its sites.
  if (method === "DELETE" && googleAccountPath.test(path)) return "admin";
  if (method === "POST" && uiRemoveAccountPath.test(path)) return "admin";
  // Reads sent as POST: MCP's JSON-RPC, and the original API's analytics queries.
  if (path === "/mcp" || path.startsWith("/api/v1/analytics/") || path === "/api/v1/page-keyword-performance") return "read";
  // The original v3 tool endpoints (src/compat): reads sent as POST.
  if (path === "/track_pages" || path === "/pages_queries" || path === "/compare_periods") return "read";
  return isSafeMethod(method) ? "read" : "write";
}
