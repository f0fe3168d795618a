import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { addDays } from "../src/sync/dates.ts";
import { tempDb } from "./helpers/db.ts";
import { stableToday } from "./helpers/day.ts";
import { addSite, storeHourlyRows, storePageTotals, storePropertyTotals, storeRows } from "./helpers/rows.ts";

// The original tool's other clients (docs/compatibility.md), table-driven: v1 paths of the
// pre-modular app as aliases of today's handlers, the v2-era ranking-data body, v3's HTTP tool
// endpoints, and MCP page arguments relative to the site; plus the MCP server's capabilities.

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let siteId = 0;
const today = await stableToday();
const d1 = addDays(today, -10);
const d2 = addDays(today, -3);
const H = "https://example.com";

// [day, page, query, device, clicks, impressions, position]
const rows: [string, string, string, string, number, number, number][] = [
  [d1, `${H}/trail-running`, "trail shoes", "DESKTOP", 10, 100, 2],
  [d1, `${H}/trail-running`, "trail shoes", "MOBILE", 5, 300, 6],
  [d1, `http://example.com/trail-running`, "trail shoes", "DESKTOP", 1, 10, 9],
  [d1, `${H}/shoes`, "trail shoes", "DESKTOP", 4, 100, 4],
  [d2, `${H}/shoes`, "running shoes", "DESKTOP", 8, 40, 1],
  [d2, `${H}/trail-running`, "trail running", "MOBILE", 2, 20, 3],
];

async function call(method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  expect(text).not.toMatch(/SQLITE|\n\s+at /);
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json };
}

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  siteId = await addSite(t.db, "sc-domain:example.com", "Example");
  for (const [day, page, query, device, clicks, impressions, position] of rows) {
    await storeRows(t.db, siteId, day, "web", [{ page, query, device, clicks, impressions, ctr: clicks / impressions, position }]);
  }
  await storeHourlyRows(t.db, siteId, [
    {
      date: d2,
      hour: 3,
      hour_timestamp: `${d2}T03:00:00-08:00`,
      query: "trail shoes",
      page: `${H}/shoes`,
      device: "DESKTOP",
      clicks: 1,
      impressions: 4,
    },
  ]);
});
afterAll(() => t.cleanup());

const v1Body = () => ({ site_id: siteId, start_date: d1, end_date: d2 });

type AliasCase = {
  name: string;
  path: string;
  canonical: string;
  body: () => Record<string, unknown>;
  canonicalBody?: () => Record<string, unknown>;
};

describe("v1 paths of the pre-modular app answer as today's handlers", () => {
  const cases: AliasCase[] = [
    { name: "ranking-data/ (trailing slash)", path: "/api/v1/ranking-data/", canonical: "/api/v1/analytics/ranking-data", body: v1Body },
    { name: "ranking-data (no slash)", path: "/api/v1/ranking-data", canonical: "/api/v1/analytics/ranking-data", body: v1Body },
    {
      name: "ranking-data/ with group_by page and a filter",
      path: "/api/v1/ranking-data/",
      canonical: "/api/v1/analytics/ranking-data",
      body: () => ({ ...v1Body(), group_by: "page", pages: [`${H}/shoes`], aggregation_mode: "daily" }),
    },
    {
      name: "daily-data/ is ranking-data per day, 365 rows by default",
      path: "/api/v1/daily-data/",
      canonical: "/api/v1/analytics/ranking-data",
      body: v1Body,
      canonicalBody: () => ({ ...v1Body(), aggregation_mode: "daily", max_results: 365 }),
    },
    {
      name: "daily-data/ keeps what the client set",
      path: "/api/v1/daily-data",
      canonical: "/api/v1/analytics/ranking-data",
      body: () => ({ ...v1Body(), max_results: 1 }),
      canonicalBody: () => ({ ...v1Body(), aggregation_mode: "daily", max_results: 1 }),
    },
    {
      name: "ranking-data-hourly/",
      path: "/api/v1/ranking-data-hourly/",
      canonical: "/api/v1/analytics/ranking-data-hourly",
      body: () => ({ site_id: siteId, start_date: d2, end_date: d2 }),
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const old = await call("POST", c.path, c.body());
      const now = await call("POST", c.canonical, (c.canonicalBody ?? c.body)());
      expect(now.status).toBe(200);
      expect(now.body.data.length).toBeGreaterThan(0);
      expect(old).toEqual(now);
    });
  }

  test("daily-data answers per day (not raw rows)", async () => {
    const r = await call("POST", "/api/v1/daily-data/", v1Body());
    expect(r.body.data.map((x: { date: string }) => x.date)).toEqual([d2, d2, d1]);
  });

  test("errors of an alias are the handler's (validation, unknown site)", async () => {
    expect((await call("POST", "/api/v1/ranking-data/", { site_id: siteId })).status).toBe(400);
    expect((await call("POST", "/api/v1/daily-data/", { hostname: "nowhere.example", start_date: d1, end_date: d2 })).status).toBe(404);
  });
});

describe("the v2-era ranking-data body (date_from/date_to, group_by a list, limit)", () => {
  type V2Case = { name: string; path?: string; body: () => Record<string, unknown>; status: number; check?: (b: any) => void };
  const cases: V2Case[] = [
    {
      name: "group_by [query]: totals over the range, ctr = Σclicks/Σimpressions, impression-weighted position",
      body: () => ({ hostname: "example.com", date_from: d1, date_to: d2, group_by: ["query"] }),
      status: 200,
      check: (b) => {
        expect(b.data[0]).toEqual({
          query: "trail shoes",
          page: null,
          clicks: 20,
          impressions: 510,
          ctr: Math.round((20 / 510) * 1e4) / 1e4,
          position: Math.round(((2 * 100 + 6 * 300 + 9 * 10 + 4 * 100) / 510) * 100) / 100,
        });
        expect(b.aggregations).toEqual({
          clicks: 30,
          impressions: 570,
          ctr: Math.round((30 / 570) * 1e4) / 1e4,
          position: Math.round(((2 * 100 + 6 * 300 + 9 * 10 + 4 * 100 + 40 + 60) / 570) * 100) / 100,
          unique_queries: 3,
          unique_pages: 3,
        });
        expect(b.total).toBe(3);
      },
    },
    {
      name: "group_by [query, page] with limit",
      body: () => ({ site_id: siteId, date_from: d1, date_to: d2, group_by: ["query", "page"], limit: 2 }),
      status: 200,
      check: (b) => {
        expect(b.data).toHaveLength(2);
        expect(b.data[0]).toMatchObject({ query: "trail shoes", page: `${H}/trail-running`, clicks: 15, impressions: 400 });
      },
    },
    {
      name: "a single group_by string is a list of one; queries filter, exact by default",
      body: () => ({ site_id: siteId, date_from: d1, date_to: d2, group_by: "page", queries: ["running shoes"] }),
      status: 200,
      check: (b) => expect(b.data.map((x: { page: string }) => x.page)).toEqual([`${H}/shoes`]),
    },
    {
      name: "exact_match false: the terms are substrings",
      body: () => ({ site_id: siteId, date_from: d1, date_to: d2, queries: ["running"], exact_match: false }),
      status: 200,
      check: (b) => expect(b.data.map((x: { query: string }) => x.query).sort()).toEqual(["running shoes", "trail running"]),
    },
    {
      name: "also at the v1 alias",
      path: "/api/v1/ranking-data/",
      body: () => ({ site_id: siteId, date_from: d2, date_to: d2, limit: 1 }),
      status: 200,
      check: (b) => expect(b.data).toEqual([expect.objectContaining({ query: "running shoes", clicks: 8 })]),
    },
    {
      name: "a column that is not stored is refused",
      body: () => ({ site_id: siteId, date_from: d1, date_to: d2, group_by: ["country"] }),
      status: 400,
      check: (b) => expect(b.error.code).toBe("validation_failed"),
    },
    { name: "date_to missing", body: () => ({ site_id: siteId, date_from: d1 }), status: 400 },
    { name: "unknown hostname", body: () => ({ hostname: "nowhere.example", date_from: d1, date_to: d2 }), status: 404 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await call("POST", c.path ?? "/api/v1/analytics/ranking-data", c.body());
      expect({ status: r.status, body: r.body }).toMatchObject({ status: c.status });
      c.check?.(r.body);
    });
  }
});

describe("v2's other spellings", () => {
  test("page-keyword-performance takes v2's url_filter and limit (as query and max_results)", async () => {
    const v2 = await call("POST", "/api/v1/page-keyword-performance/", { site_id: siteId, url_filter: "/trail", limit: 1 });
    const v1 = await call("POST", "/api/v1/page-keyword-performance/", { site_id: siteId, query: "/trail", max_results: 1 });
    expect(v2.status).toBe(200);
    expect(v2.body.data).toHaveLength(1);
    expect(v2.body.data[0].url).toContain("/trail-running");
    expect(v2).toEqual(v1);
  });

  test("/schema is the OpenAPI document and /schema/swagger the reference page", async () => {
    const schema = await call("GET", "/schema");
    expect(schema.status).toBe(200);
    expect(schema.body.openapi).toBe("3.1.0");
    const page = await app.request("/schema/swagger");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("/docs/scalar.js");
  });
});

describe("v3's HTTP tool endpoints", () => {
  type ToolCase = { name: string; path: string; body: unknown; status: number; check?: (b: any) => void };
  const cases: ToolCase[] = [
    {
      name: "track_pages with a path relative to the site: every stored URL with that path",
      path: "/track_pages",
      body: { site: "sc-domain:example.com", pages: ["/trail-running"], days: 30 },
      status: 200,
      check: (b) => {
        expect(new Set(b.map((r: { page: string }) => r.page))).toEqual(
          new Set([`${H}/trail-running`, "http://example.com/trail-running"]),
        );
        expect(b[0]).toMatchObject({ date: d2, page: `${H}/trail-running`, query: "trail running", clicks: 2 });
      },
    },
    {
      name: "track_pages keywords narrow the rows",
      path: "/track_pages",
      body: { site: "example.com", pages: [`${H}/shoes`], keywords: ["running shoes"] },
      status: 200,
      check: (b) => expect(b).toEqual([expect.objectContaining({ date: d2, query: "running shoes", clicks: 8, impressions: 40 })]),
    },
    {
      name: "pages_queries: a page's queries over all days",
      path: "/pages_queries",
      body: { site: "example.com", pages: ["/shoes"] },
      status: 200,
      check: (b) => expect(b.map((r: { query: string }) => r.query)).toEqual(["trail shoes", "running shoes"]),
    },
    {
      name: "compare_periods custom: totals of both periods",
      path: "/compare_periods",
      body: {
        site: "example.com",
        period_type: "custom",
        custom_periods: { period1: { start: d1, end: d1 }, period2: { start: d2, end: d2 } },
      },
      status: 200,
      check: (b) =>
        expect(b).toMatchObject({
          period1_start: d1,
          period2_end: d2,
          period1_clicks: 20,
          period2_clicks: 10,
          clicks_change: -10,
          clicks_change_pct: -50,
        }),
    },
    {
      name: "missing pages: the original's message",
      path: "/track_pages",
      body: { site: "example.com" },
      status: 400,
      check: (b) => expect(b.error.message).toBe("Missing required parameters: site and pages"),
    },
    {
      name: "missing site (compare_periods)",
      path: "/compare_periods",
      body: { period_type: "week" },
      status: 400,
      check: (b) => expect(b.error.message).toBe("Missing required parameter: site"),
    },
    { name: "no JSON body", path: "/pages_queries", body: "not json", status: 400 },
    {
      name: "a relative path no stored page has is named, not answered with silence",
      path: "/pages_queries",
      body: { site: "example.com", pages: ["/nowhere"] },
      status: 404,
      check: (b) => expect(b.error.message).toContain("/nowhere"),
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await call("POST", c.path, c.body);
      expect({ status: r.status, body: r.body }).toMatchObject({ status: c.status });
      c.check?.(r.body);
    });
  }
});

describe("MCP", () => {
  const rpc = (method: string, params: Record<string, unknown>) => call("POST", "/mcp", { jsonrpc: "2.0", id: 1, method, params });

  test("capabilities are honest: a stateless server never announces tool-list changes", async () => {
    const r = await rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } });
    expect(r.status).toBe(200);
    expect(r.body.result.capabilities.tools).toEqual({ listChanged: false });
  });

  type McpCase = { name: string; tool: string; args: () => Record<string, unknown>; check: (b: any) => void };
  const cases: McpCase[] = [
    {
      name: "show_page_queries takes a path relative to the site",
      tool: "show_page_queries",
      args: () => ({ site_id: siteId, page: "/shoes", days: 30 }),
      check: (b) => expect(b.rows.map((r: { query: string }) => r.query).sort()).toEqual(["running shoes", "trail shoes"]),
    },
    {
      name: "track_pages takes relative paths (both stored URLs of the path)",
      tool: "track_pages",
      args: () => ({ site_id: siteId, pages: ["/trail-running"], days: 30 }),
      check: (b) => expect(b.rows.filter((r: { page: string }) => r.page.startsWith("http://"))).toHaveLength(1),
    },
    {
      name: "pages_queries takes relative paths",
      tool: "pages_queries",
      args: () => ({ site_id: siteId, pages: ["/shoes"] }),
      check: (b) => expect(b.rows).toHaveLength(2),
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await rpc("tools/call", { name: c.tool, arguments: c.args() });
      expect(r.status).toBe(200);
      expect(r.body.result.isError).toBeUndefined();
      c.check(r.body.result.structuredContent);
    });
  }

  test("a relative path no stored page has is a tool error naming it", async () => {
    const r = await rpc("tools/call", { name: "show_page_queries", arguments: { site_id: siteId, page: "/nowhere" } });
    expect(r.body.result.isError).toBe(true);
    expect(r.body.result.content[0].text).toContain("/nowhere");
  });
});

describe("the v1 job API, where it coexists with ours", () => {
  test("trigger takes v1's query (days, test_mode ignored); the job has the fields v1 clients read", async () => {
    const r = await call("POST", `/api/v1/sync/trigger/${siteId}?days=3&test_mode=true`);
    // 202 with an integer job_id where v1 answered 200 with a UUID (docs/compatibility.md).
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({
      job_id: expect.any(Number),
      message: expect.any(String),
      status_url: `/api/v1/sync/job/${r.body.job_id}`,
    });
    const job = await call("GET", r.body.status_url);
    expect(job.status).toBe(200);
    for (const field of ["id", "site_id", "site_name", "status", "progress", "total_tasks", "started_at", "completed_at", "error", "stats"])
      expect({ field, present: field in job.body }).toEqual({ field, present: true });
    expect(job.body.stats).toEqual({ synced: 0, failed: 0, skipped: 0 });
    // A second trigger while the first is pending: 409 (v1 started a second simulated job).
    expect((await call("POST", `/api/v1/sync/trigger/${siteId}?days=3`)).status).toBe(409);
    const list = await call("GET", "/api/v1/sync/jobs?active_only=true");
    expect(list.body).toMatchObject({ total: 1, jobs: [expect.objectContaining({ id: r.body.job_id })] });
    const cancelled = await call("DELETE", r.body.status_url);
    expect(cancelled).toMatchObject({ status: 200, body: { id: r.body.job_id, status: "cancelled" } });
    expect((await call("GET", "/api/v1/sync/job/999999")).status).toBe(404);
  });
});

describe("v2 ranking-data reads each number from its grain (issue 18)", () => {
  // A site whose days were fetched with the grains: Google's property and page totals count the anonymized
  // queries the detail leaves out, so they are larger than the detail's sums.
  let grainSite = 0;
  const G = "https://grains.example";
  beforeAll(async () => {
    grainSite = await addSite(t.db, "sc-domain:grains.example", "Grains");
    await storeRows(t.db, grainSite, d1, "web", [
      { page: `${G}/a`, query: "alpha", device: "DESKTOP", clicks: 3, impressions: 30, ctr: 0.1, position: 2 },
      { page: `${G}/b`, query: "beta", device: "MOBILE", clicks: 1, impressions: 10, ctr: 0.1, position: 4 },
    ]);
    await storePropertyTotals(t.db, grainSite, d1, "web", [
      { device: "DESKTOP", clicks: 7, impressions: 70, position: 3 },
      { device: "MOBILE", clicks: 3, impressions: 30, position: 5 },
    ]);
    await storePageTotals(t.db, grainSite, d1, "web", [
      { page: `${G}/a`, device: "DESKTOP", clicks: 5, impressions: 50, position: 2 },
      { page: `${G}/b`, device: "MOBILE", clicks: 2, impressions: 20, position: 4 },
    ]);
  });
  const v2 = (more: Record<string, unknown>) =>
    call("POST", "/api/v1/analytics/ranking-data", { site_id: grainSite, date_from: d1, date_to: d2, ...more });

  test("no filter: aggregations are the property totals (every search type); unique queries from the rollup, pages from the page totals", async () => {
    const r = await v2({ group_by: ["query"] });
    expect(r.status).toBe(200);
    expect(r.body.aggregations).toEqual({
      clicks: 10,
      impressions: 100,
      ctr: 0.1,
      position: Math.round(((3 * 70 + 5 * 30) / 100) * 100) / 100,
      unique_queries: 2,
      unique_pages: 2,
    });
    // The rows grouped by query are the detail's (the rollup's) sums.
    expect(r.body.data.map((x: { query: string; clicks: number }) => [x.query, x.clicks])).toEqual([
      ["alpha", 3],
      ["beta", 1],
    ]);
  });

  test("by page (no query filter): rows and aggregations from the page totals", async () => {
    const r = await v2({ group_by: ["page"], pages: [`${G}/a`] });
    expect(r.body.data).toEqual([{ query: null, page: `${G}/a`, clicks: 5, impressions: 50, ctr: 0.1, position: 2 }]);
    expect(r.body.aggregations).toMatchObject({ clicks: 5, impressions: 50, unique_pages: 1, unique_queries: 1 });
    const all = await v2({ group_by: ["page"] });
    expect(all.body.data.map((x: { page: string; clicks: number }) => [x.page, x.clicks])).toEqual([
      [`${G}/a`, 5],
      [`${G}/b`, 2],
    ]);
  });

  test("a query filter: rows and aggregations from the query detail", async () => {
    const r = await v2({ group_by: ["page"], queries: ["alpha"] });
    expect(r.body.data).toEqual([{ query: null, page: `${G}/a`, clicks: 3, impressions: 30, ctr: 0.1, position: 2 }]);
    expect(r.body.aggregations).toEqual({ clicks: 3, impressions: 30, ctr: 0.1, position: 2, unique_queries: 1, unique_pages: 1 });
  });
});
