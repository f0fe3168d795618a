import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { Counter, Histogram, Registry } from "prom-client";
import { log, setLogLevel } from "../src/log.ts";
import { DURATION_BUCKETS, httpMetrics } from "../src/metrics/http.ts";
import { requestFrame, SECURITY_HEADERS } from "../src/request-frame.ts";

// The request frame (request id, log context, metrics, security headers, request log in one
// middleware) on a bare Hono app, and the HTTP metrics' exposition against prom-client's own.

const noop = () => {};

describe("requestFrame", () => {
  test("sets the same security headers as Hono's secureHeaders with the app's options, on answers and errors", async () => {
    const reference = new Hono();
    reference.use(
      secureHeaders({
        strictTransportSecurity: false,
        xXssProtection: false,
        xDownloadOptions: false,
        xPermittedCrossDomainPolicies: false,
        xDnsPrefetchControl: false,
      }),
    );
    reference.get("/", (c) => c.json({}));
    const expected = [...(await reference.request("/")).headers].filter(([k]) => k !== "content-type");

    const app = new Hono();
    app.use(requestFrame({ observe: noop }));
    app.get("/", (c) => c.json({}));
    app.get("/boom", () => {
      throw new Error("boom");
    });
    app.onError((_err, c) => c.json({ error: "x" }, 500));
    for (const path of ["/", "/boom", "/nowhere"]) {
      const res = await app.request(path);
      for (const [k, v] of expected) expect([path, k, res.headers.get(k)]).toEqual([path, k, v]);
      expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(SECURITY_HEADERS.length).toBe(expected.length);
  });

  test("keeps a plain client X-Request-Id, replaces a long or odd one, and logs with it", async () => {
    const app = new Hono();
    app.use(requestFrame({ observe: noop }));
    let seen: unknown;
    app.get("/", (c) => {
      seen = c.get("requestId" as never);
      return c.text("ok");
    });
    expect((await app.request("/", { headers: { "x-request-id": "abc-123_x=" } })).headers.get("x-request-id")).toBe("abc-123_x=");
    expect(seen).toBe("abc-123_x=");
    for (const bad of ["a b", "x".repeat(256), "<script>"]) {
      const id = (await app.request("/", { headers: { "x-request-id": bad } })).headers.get("x-request-id");
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test("records method, status, route template and duration once per request; logs the request line only when asked", async () => {
    const seen: [string, number, string][] = [];
    const lines: string[] = [];
    const original = console.error;
    console.error = (line: string) => lines.push(line);
    setLogLevel("info");
    try {
      for (const requestLog of [false, true]) {
        const app = new Hono();
        app.use(requestFrame({ observe: (m, s, r, sec) => (expect(sec).toBeGreaterThanOrEqual(0), seen.push([m, s, r])), requestLog }));
        app.get("/sites/:id", (c) => {
          log("info", "inside");
          return c.json({ id: c.req.param("id") });
        });
        const res = await app.request("/sites/7");
        const id = res.headers.get("x-request-id");
        // The line logged inside the request carries its id (the log context).
        expect(lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "inside" && l.request_id === id)).toHaveLength(1);
        const requestLines = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request" && l.request_id === id);
        expect(requestLines).toHaveLength(requestLog ? 1 : 0);
        if (requestLog) expect(requestLines[0]).toMatchObject({ method: "GET", path: "/sites/7", route: "/sites/:id", status: 200 });
        await app.request("/missing");
      }
    } finally {
      console.error = original;
      setLogLevel("error");
    }
    expect(seen).toEqual([
      ["GET", 200, "/sites/:id"],
      ["GET", 404, "/*"],
      ["GET", 200, "/sites/:id"],
      ["GET", 404, "/*"],
    ]);
  });
});

describe("httpMetrics", () => {
  test("exposes what prom-client's own Histogram and Counter expose for the same requests", async () => {
    const ours = new Registry();
    const observe = httpMetrics(ours);
    const reference = new Registry();
    const labelNames = ["method", "status", "ok", "route"];
    const h = new Histogram({
      name: "http_request_duration_seconds",
      help: "Duration of HTTP requests in seconds",
      labelNames,
      buckets: [...DURATION_BUCKETS],
      registers: [reference],
    });
    const n = new Counter({ name: "http_requests_total", help: "Total number of HTTP requests", labelNames, registers: [reference] });
    const requests: [string, number, string, number][] = [
      ["GET", 200, "/api/v1/sites/:id", 0.001],
      ["GET", 200, "/api/v1/sites/:id", 0.005],
      ["GET", 200, "/api/v1/sites/:id", 0.3],
      ["GET", 404, "/api/v1/sites/:id", 0.02],
      ["POST", 201, "/api/v1/sites", 11],
      ["POST", 201, "/api/v1/sites", 10],
      ["GET", 404, "/*", 0.075],
    ];
    for (const [method, status, route, s] of requests) {
      observe(method, status, route, s);
      const labels = { method, status: String(status), ok: String(status >= 200 && status < 300), route };
      h.observe(labels, s);
      n.inc(labels);
    }
    const sorted = (text: string) => text.split("\n").sort().join("\n");
    expect(sorted(await ours.metrics())).toBe(sorted(await reference.metrics()));
    expect(await ours.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON());
    // A scrape does not change the counts: the next one, after one more request, adds exactly it.
    observe("GET", 200, "/api/v1/sites/:id", 0.001);
    h.observe({ method: "GET", status: "200", ok: "true", route: "/api/v1/sites/:id" }, 0.001);
    n.inc({ method: "GET", status: "200", ok: "true", route: "/api/v1/sites/:id" });
    expect(sorted(await ours.metrics())).toBe(sorted(await reference.metrics()));
  });
});
