import { Counter, Histogram, type Registry } from "./prom.ts";
import { type BucketSeries, fillHistogram, newSeries, observeSeries } from "./series.ts";

// HTTP requests and latency by route template, with the names, labels and buckets of
// @hono/prometheus's standard metrics (which this replaced). A request costs a few array increments:
// each (route, method, status) series is an object found by two Map lookups on strings the router
// already holds (no label object, no key string, no prom-client label hashing per request); the
// prom-client metrics are filled from these series when scraped (their `collect`), so the exposition
// and the supervisor's merge are prom-client's own.

const labelNames = ["method", "status", "ok", "route"] as const;
type Labels = Record<(typeof labelNames)[number], string>;

/** Upper bounds (seconds) of the duration histogram's buckets. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] as const;

type Series = BucketSeries & { labels: Labels };

/** What the HTTP metrics need from a request once it is answered. */
export type HttpObserve = (method: string, status: number, route: string, seconds: number) => void;

/**
 * Registers `http_requests_total` and `http_request_duration_seconds` (by method, status, ok and route
 * template, `/*` when none matched) in `registry`; returns the function that records one answered request.
 */
export function httpMetrics(registry: Registry): HttpObserve {
  // Bounded like the series themselves: methods Bun parses x statuses x route templates.
  const byRoute = new Map<string, Map<number, Series>>();
  const methodCodes = new Map<string, number>();
  const all: Series[] = [];

  function seriesOf(method: string, status: number, route: string): Series {
    let byKey = byRoute.get(route);
    if (byKey === undefined) {
      byKey = new Map();
      byRoute.set(route, byKey);
    }
    let m = methodCodes.get(method);
    if (m === undefined) {
      m = methodCodes.size;
      methodCodes.set(method, m);
    }
    const key = status * 64 + m;
    let s = byKey.get(key);
    if (s === undefined) {
      s = { labels: { method, status: String(status), ok: String(status >= 200 && status < 300), route }, ...newSeries(DURATION_BUCKETS) };
      byKey.set(key, s);
      all.push(s);
    }
    return s;
  }

  new Histogram({
    name: "http_request_duration_seconds",
    help: "Duration of HTTP requests in seconds",
    labelNames,
    buckets: [...DURATION_BUCKETS],
    registers: [registry],
    collect() {
      fillHistogram(
        this,
        DURATION_BUCKETS,
        all.map((s, i) => [String(i), s.labels, s]),
      );
    },
  });
  new Counter({
    name: "http_requests_total",
    help: "Total number of HTTP requests",
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of all) this.inc(s.labels, s.count);
    },
  });

  return (method, status, route, seconds) => observeSeries(seriesOf(method, status, route), DURATION_BUCKETS, seconds);
}
