import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { setLogLevel } from "../src/log.ts";
import { tempDb } from "./helpers/db.ts";

// REQUEST_LOG: one JSON line per request on stderr through log(), like every other log line.

let t: ReturnType<typeof tempDb>;
let lines: string[];
let spy: ReturnType<typeof spyOn>;
beforeAll(() => {
  t = tempDb();
  setLogLevel("info");
});
afterAll(() => t.cleanup());
afterEach(() => spy?.mockRestore());

function capture() {
  lines = [];
  spy = spyOn(console, "error").mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
  return () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "request");
}

describe("REQUEST_LOG on", () => {
  const app = () => createApp(t.db, { requestLog: true });
  const cases: { method: string; path: string; body?: string; status: number }[] = [
    { method: "GET", path: "/health", status: 200 },
    { method: "POST", path: "/api/v1/sites", body: JSON.stringify({ domain: "sc-domain:log.example", name: "Log" }), status: 201 },
    { method: "POST", path: "/api/v1/sites", body: "{not json", status: 400 },
    { method: "GET", path: "/api/v1/sites/999999", status: 404 },
    { method: "GET", path: "/no/such/route?x=1", status: 404 },
  ];
  for (const c of cases) {
    test(`${c.method} ${c.path} -> one JSON line with status ${c.status}`, async () => {
      const requests = capture();
      const res = await app().request(c.path, {
        method: c.method,
        body: c.body,
        headers: c.body ? { "content-type": "application/json" } : {},
      });
      expect(res.status).toBe(c.status);
      const logged = requests();
      expect(logged).toEqual([
        {
          t: expect.stringMatching(/Z$/),
          level: "info",
          pid: process.pid,
          msg: "request",
          method: c.method,
          path: c.path.split("?")[0],
          status: c.status,
          ms: expect.any(Number),
          request_id: res.headers.get("x-request-id"),
        },
      ]);
      expect(logged[0]!.ms as number).toBeGreaterThanOrEqual(0);
    });
  }
});

test("REQUEST_LOG off: no request lines", async () => {
  const requests = capture();
  const res = await createApp(t.db).request("/health");
  expect(res.status).toBe(200);
  expect(requests()).toEqual([]);
});
