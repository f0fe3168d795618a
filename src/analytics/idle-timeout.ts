import type { Context, MiddlewareHandler } from "hono";
import { defaults } from "../config.ts";

// A heavy request's connection idle timeout. Bun closes a connection silent past its idle timeout
// (HTTP_IDLE_TIMEOUT_S) even while a request on it waits for its answer, so a heavy route raises its request's
// timeout to its time limits (src/analytics/bounds.ts `heavyRequest`). That raise comes after the auth middleware,
// whose key lookup and rate limit are queries on PostgreSQL: a request that spent the idle timeout there (at load,
// or with the pool busy) was reset before it was raised. So a GET's timeout is raised first, before anything that
// can wait, and set back once no heavy route took the request. A small module of its own: app.ts mounts it without
// loading the heavy routes' modules.

/** The part of Bun's Server (Hono's `c.env` under Bun.serve) that sets one request's connection idle timeout. */
type BunServer = { timeout?: (req: Request, seconds: number) => void };

/** The requests a heavy route took (`heavyRequest` adds them), by the request's context (one across mounted apps). */
export const heavyRequests = new WeakSet<object>();

/** Sets the idle timeout of the connection `c`'s request came on (nothing outside Bun.serve, e.g. `app.request`). */
export function setIdleTimeout(c: Context, seconds: number): void {
  (c.env as BunServer | undefined)?.timeout?.(c.req.raw, seconds);
}

/** The idle timeout a heavy request's connection needs: its time limits plus a margin, null if `idleS` covers them. */
export function socketTimeoutOf(idleS: number, ...limitsMs: number[]): number | null {
  const needed = Math.ceil(Math.max(...limitsMs) / 1000) + 2;
  if (needed <= idleS) return null;
  // Bun's idle timeouts go up to 255 s; past that the time limit alone ends the request.
  return needed > 255 ? 0 : needed;
}

/** The heavy requests' idle timeout of the default settings (`defaultBounds`). */
export const defaultSocketTimeoutS = socketTimeoutOf(
  defaults.HTTP_IDLE_TIMEOUT_S,
  defaults.ANALYTICS_TIMEOUT_MS,
  defaults.MCP_QUERY_TIMEOUT_MS,
);

/**
 * Middleware for GET and HEAD, mounted before anything that can wait: the connection gets the heavy requests' idle
 * timeout `heavyS` at once, and `idleS` back after a request no heavy route took (kept-alive connections stay bound by
 * HTTP_IDLE_TIMEOUT_S). Only requests without a body: a body trickling in stays bound by `idleS` until a heavy route
 * takes it.
 */
export function idleTimeoutFirst(heavyS: number, idleS: number): MiddlewareHandler {
  return async (c, next) => {
    setIdleTimeout(c, heavyS);
    try {
      await next();
    } finally {
      if (!heavyRequests.has(c)) setIdleTimeout(c, idleS);
    }
  };
}
