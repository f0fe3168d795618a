import type { MiddlewareHandler } from "hono";
import { log, withLogContext } from "./log.ts";
import type { HttpObserve } from "./metrics/http.ts";

// What every request gets around it, in one middleware (one async frame instead of four): its id
// (X-Request-Id), the log context carrying that id, the HTTP metrics, the security headers, and the
// request log line when REQUEST_LOG is on. Everything that depends on configuration is decided here,
// once; the per-request work is a header read, a few header writes and a few increments.

/**
 * The security headers of every answer: Hono's secureHeaders defaults without the ones that mean
 * nothing for a JSON API on plain HTTP (HSTS: a TLS proxy in front sets it) or only for long-gone
 * browsers (X-XSS-Protection, X-Download-Options, Flash's cross-domain policies, DNS prefetch).
 * test/request-frame.test.ts checks that they are what secureHeaders with those options sets.
 */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ["Cross-Origin-Resource-Policy", "same-origin"],
  ["Cross-Origin-Opener-Policy", "same-origin"],
  ["Origin-Agent-Cluster", "?1"],
  ["Referrer-Policy", "no-referrer"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-Frame-Options", "SAMEORIGIN"],
];

export type RequestFrameOptions = {
  /** Records the answered request in the HTTP metrics (src/metrics/http.ts). */
  observe: HttpObserve;
  /** Log one `request` line per request (REQUEST_LOG). */
  requestLog?: boolean;
};

/** A client's X-Request-Id is kept when it is short and plain (Hono's requestId rule); else a new UUID. */
export function requestIdOf(given: string | undefined): string {
  return given === undefined || given.length > 255 || /[^\w\-=]/.test(given) ? crypto.randomUUID() : given;
}

/**
 * The request frame middleware: sets `requestId` (and X-Request-Id on the answer), runs the rest with
 * the id in the log context, then sets the security headers, records the metrics and, with
 * `requestLog`, logs the request line. After next() the status is final (errors were already turned
 * into answers by onError) and routePath is the matched route's template (`/*` when none matched).
 *
 * @example
 * app.use(requestFrame({ observe: observeHttpRequest, requestLog: config.REQUEST_LOG }))
 */
export function requestFrame(opts: RequestFrameOptions): MiddlewareHandler {
  const { observe } = opts;
  const logRequests = opts.requestLog === true;
  return async function requestFrame(c, next) {
    const start = performance.now();
    const id = requestIdOf(c.req.header("x-request-id"));
    c.set("requestId" as never, id as never);
    try {
      // request_id on every line logged while serving the request, not only on the request line.
      await withLogContext({ request_id: id }, next);
    } finally {
      const res = c.res;
      const headers = res.headers;
      headers.set("X-Request-Id", id);
      for (let i = 0; i < SECURITY_HEADERS.length; i++) headers.set(SECURITY_HEADERS[i]![0], SECURITY_HEADERS[i]![1]);
      const ms = performance.now() - start;
      const method = c.req.method;
      const route = c.req.routePath;
      observe(method, res.status, route, ms / 1000);
      if (logRequests) logRequest(id, method, c.req.path, route, res.status, ms);
    }
  };
}

/** The `request` log line of one answered request (REQUEST_LOG). */
export function logRequest(id: string, method: string, path: string, route: string, status: number, ms: number) {
  log("info", "request", { request_id: id, method, path, route, status, duration_ms: Math.round(ms * 100) / 100 });
}
