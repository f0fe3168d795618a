import type { MiddlewareHandler } from "hono";
import { Counter, Histogram, type Registry } from "prom-client";

// HTTP requests and latency by route template, with the names, labels and buckets of
// @hono/prometheus's standard metrics (which this replaces): that middleware built and spread three
// label objects per request and timed with hrtime closures; here each (method, status, route) has one
// label object, built on its first request.

const labelNames = ["method", "status", "ok", "route"] as const;
type Labels = Record<(typeof labelNames)[number], string>;

/**
 * Middleware counting every request (`http_requests_total`) and its duration
 * (`http_request_duration_seconds`) by method, status, ok and route template (`/*` when none matched).
 */
export function httpMetrics(registry: Registry): MiddlewareHandler {
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "Duration of HTTP requests in seconds",
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
    registers: [registry],
  });
  const total = new Counter({ name: "http_requests_total", help: "Total number of HTTP requests", labelNames, registers: [registry] });
  // Bounded like the series themselves: methods Bun parses x statuses x route templates.
  const labelsOf = new Map<string, Labels>();
  return async (c, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      const method = c.req.method;
      const status = c.res.status;
      const route = c.req.routePath;
      const key = `${method} ${status} ${route}`;
      let labels = labelsOf.get(key);
      if (labels === undefined) {
        labels = { method, status: String(status), ok: String(status >= 200 && status < 300), route };
        labelsOf.set(key, labels);
      }
      duration.observe(labels, (performance.now() - start) / 1000);
      total.inc(labels);
    }
  };
}
