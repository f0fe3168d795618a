import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { log, setLogFormat, setLogLevel, withLogContext } from "../src/log.ts";
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
  const cases: { method: string; path: string; body?: string; status: number; route: string }[] = [
    { method: "GET", path: "/health", status: 200, route: "/health" },
    {
      method: "POST",
      path: "/api/v1/sites",
      body: JSON.stringify({ domain: "sc-domain:log.example", name: "Log" }),
      status: 201,
      route: "/api/v1/sites",
    },
    { method: "POST", path: "/api/v1/sites", body: "{not json", status: 400, route: "/api/v1/sites" },
    { method: "GET", path: "/api/v1/sites/999999", status: 404, route: "/api/v1/sites/:id" },
    { method: "GET", path: "/no/such/route?x=1", status: 404, route: "/*" },
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
          route: c.route,
          status: c.status,
          duration_ms: expect.any(Number),
          request_id: res.headers.get("x-request-id"),
        },
      ]);
      expect(logged[0]!.duration_ms as number).toBeGreaterThanOrEqual(0);
    });
  }
});

test("REQUEST_LOG off: no request lines", async () => {
  const requests = capture();
  const res = await createApp(t.db).request("/health");
  expect(res.status).toBe(200);
  expect(requests()).toEqual([]);
});

test("lines logged while serving a request carry its request id", async () => {
  const app = createApp(t.db);
  app.get("/logs-something", (c) => {
    log("warn", "inside the handler");
    return c.text("ok");
  });
  capture();
  const res = await app.request("/logs-something");
  const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "inside the handler");
  expect(line?.request_id).toBe(res.headers.get("x-request-id"));
});

test("withLogContext: task_id on every line, also after awaits; LOG_FORMAT=pretty prints readable lines", async () => {
  capture();
  await withLogContext({ task_id: 42 }, async () => {
    await Bun.sleep(1);
    log("info", "day synced", { day: "2026-11-20" });
  });
  log("info", "outside");
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(parsed.find((l) => l.msg === "day synced")).toMatchObject({ task_id: 42, day: "2026-11-20" });
  expect(parsed.find((l) => l.msg === "outside")?.task_id).toBeUndefined();

  capture();
  setLogFormat("pretty");
  try {
    withLogContext({ task_id: 7 }, () => log("warn", "retrying", { status: 429, note: "two words" }));
  } finally {
    setLogFormat("json");
  }
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} (\x1b\[\d+m)?WARN (\x1b\[0m)? ?\[\d+\] retrying task_id=7 status=429 note="two words"$/);
});
