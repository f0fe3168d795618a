import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { addDays } from "../src/sync/dates.ts";
import { tempDb } from "./helpers/db.ts";
import { stableToday } from "./helpers/day.ts";
import { storeAppearanceTotals, storePageTotals, storePropertyTotals, storeRows } from "./helpers/rows.ts";

// Every total from its grain with Search Console's formulas (docs/analytics.md), on hand-computed
// fixtures: a property whose totals exceed the sum of its query detail (anonymized queries), so a
// total summed from the detail is visibly wrong, and rows whose plain means differ from the weighted
// formulas. Runs on the suite's engine (both in CI).

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let site: number;
const P = "https://grains.example";
// Recent days, so look-back windows (the MCP tools' `days`) hold them.
const today = await stableToday();
const D1 = addDays(today, -12);
const D2 = addDays(today, -11);
const D3 = addDays(today, -10);

async function call(method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    // CSV
  }
  return { status: res.status, text, json };
}

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  const r = await call("POST", "/api/v1/sites", { domain: "sc-domain:grains.example", name: "grains" });
  site = r.json.id;
  const db = t.db;
  // Day 1. Query detail (the queries Google names): 20 clicks, 200 impressions.
  await storeRows(db, site, D1, "web", [
    { page: `${P}/a`, query: "alpha", device: "DESKTOP", clicks: 10, impressions: 100, ctr: 0.1, position: 2 },
    { page: `${P}/a`, query: "beta", device: "MOBILE", clicks: 5, impressions: 50, ctr: 0.1, position: 4 },
    { page: `${P}/b`, query: "alpha", device: "DESKTOP", clicks: 5, impressions: 50, ctr: 0.1, position: 6 },
  ]);
  // Google's property totals (anonymized queries included): 30 clicks, 400 impressions,
  // Σ position × impressions = 3×200 + 5×100 + 8×100 = 1900. Anonymized share 1 − 20/30 = 1/3.
  await storePropertyTotals(
    db,
    site,
    D1,
    "web",
    [
      { country: "usa", device: "DESKTOP", clicks: 20, impressions: 200, position: 3 },
      { country: "usa", device: "MOBILE", clicks: 6, impressions: 100, position: 5 },
      { country: "fra", device: "DESKTOP", clicks: 4, impressions: 100, position: 8 },
    ],
    { anonymizedShare: 1 / 3 },
  );
  await storePageTotals(db, site, D1, "web", [
    { page: `${P}/a`, country: "usa", device: "DESKTOP", clicks: 12, impressions: 150, position: 2 },
    { page: `${P}/a`, country: "usa", device: "MOBILE", clicks: 6, impressions: 90, position: 4 },
    { page: `${P}/b`, country: "fra", device: "DESKTOP", clicks: 6, impressions: 120, position: 7 },
  ]);
  await storeAppearanceTotals(db, site, D1, "web", [{ appearance: "AMP_BLUE_LINK", clicks: 3, impressions: 30, position: 2 }]);
  // Day 2: detail 8 clicks; property 10 clicks, 100 impressions at 1.5 (share 1 − 8/10 = 0.2).
  await storeRows(db, site, D2, "web", [
    { page: `${P}/a`, query: "alpha", device: "DESKTOP", clicks: 8, impressions: 80, ctr: 0.1, position: 1 },
  ]);
  await storePropertyTotals(db, site, D2, "web", [{ country: "usa", device: "DESKTOP", clicks: 10, impressions: 100, position: 1.5 }], {
    anonymizedShare: 0.2,
  });
  await storePageTotals(db, site, D2, "web", [
    { page: `${P}/a`, country: "usa", device: "DESKTOP", clicks: 10, impressions: 100, position: 1.5 },
  ]);
  // Day 3: synced before the grains existed: detail only, derived at read time.
  await storeRows(db, site, D3, "web", [
    { page: `${P}/a`, query: "gamma", device: "DESKTOP", clicks: 1, impressions: 10, ctr: 0.1, position: 1 },
  ]);
  // Video: totals the migration of old data summed from the detail (completeness says derived).
  await storePropertyTotals(db, site, D1, "video", [{ device: "MOBILE", clicks: 2, impressions: 20, position: 3 }], { derived: true });
  // Discover: property and page totals only (no query, no device).
  await storePropertyTotals(db, site, D1, "discover", [{ country: "usa", clicks: 50, impressions: 1000, position: 1 }]);
});
afterAll(async () => {
  await t.cleanup();
});

const trends = (q: string) => call("GET", `/api/v1/analytics/performance-trends?site_id=${site}&days=30${q}`);

describe("performance-trends reads the property totals", () => {
  test("each day equals Google's totals exactly, not the sum of the detail; ctr and position by the weighted formulas", async () => {
    const r = await trends("");
    expect(r.status).toBe(200);
    const byDate = Object.fromEntries(r.json.data.map((d: { date: string }) => [d.date, d]));
    expect(byDate[D1]).toMatchObject({ total_clicks: 30, total_impressions: 400, ctr: 0.075, avg_position: 4.75, derived: false });
    expect(byDate[D1].unique_queries).toBe(2); // alpha, beta: the named queries
    expect(byDate[D2]).toMatchObject({ total_clicks: 10, total_impressions: 100, ctr: 0.1, avg_position: 1.5, derived: false });
    // Day 3 has no grain: summed from the detail and flagged.
    expect(byDate[D3]).toMatchObject({ total_clicks: 1, total_impressions: 10, avg_position: 1, derived: true });
    // Window: 41 clicks, 510 impressions; Σ sum_position = 1900 + 150 + 10 = 2060 → 2060 / 510.
    // (Plain means of the rows would be ctr 0.0875 and position 3.9: wrong.)
    expect(r.json.summary).toMatchObject({ total_clicks: 41, total_impressions: 510, derived_days: 1, search_type: "web" });
    expect(r.json.summary.ctr).toBeCloseTo(41 / 510, 12);
    expect(r.json.summary.avg_position).toBeCloseTo(2060 / 510, 12);
    // Anonymized share over the days with grains: 1 − (20 + 8) / (30 + 10) = 0.3 (the derived day left out).
    expect(r.json.summary.anonymized_clicks_share).toBeCloseTo(0.3, 12);
  });

  test("country and device filter the property totals", async () => {
    const usa = await trends("&country=usa");
    const d1 = usa.json.data.find((d: { date: string }) => d.date === D1);
    // usa: 26 clicks, 300 impressions, (3×200 + 5×100) / 300
    expect(d1).toMatchObject({ total_clicks: 26, total_impressions: 300, unique_queries: null });
    expect(d1.avg_position).toBeCloseTo(1100 / 300, 12);
    // No derivation under a country filter (the detail has no country): day 3 is a gap.
    expect(usa.json.data.map((d: { date: string }) => d.date)).toEqual([D2, D1]);
    expect(usa.json.summary.anonymized_clicks_share).toBeNull();
    const mobile = await trends("&device=MOBILE");
    expect(mobile.json.data).toEqual([expect.objectContaining({ date: D1, total_clicks: 6, total_impressions: 100, avg_position: 5 })]);
    const both = await trends("&country=usa&device=desktop");
    expect(both.json.data.find((d: { date: string }) => d.date === D1)).toMatchObject({ total_clicks: 20, avg_position: 3 });
  });

  test("search appearance reads the appearance totals; discover its own totals", async () => {
    const amp = await trends("&search_appearance=AMP_BLUE_LINK");
    expect(amp.json.data).toEqual([expect.objectContaining({ date: D1, total_clicks: 3, total_impressions: 30, avg_position: 2 })]);
    const video = await trends("&search_type=video");
    expect(video.json.data).toEqual([expect.objectContaining({ date: D1, total_clicks: 2, derived: true })]);
    expect(video.json.summary).toMatchObject({ derived_days: 1, anonymized_clicks_share: null });
    const discover = await trends("&search_type=discover");
    expect(discover.json.data).toEqual([expect.objectContaining({ date: D1, total_clicks: 50, total_impressions: 1000 })]);
  });

  test("filter combinations no grain answers exactly: 400 with the reason", async () => {
    for (const [q, text] of [
      ["&search_appearance=AMP_BLUE_LINK&country=usa", /only alone/],
      ["&search_type=discover&device=MOBILE", /no device/],
      ["&country=USA", /alpha-3/],
      ["&search_type=shopping", /search_type/],
    ] as const) {
      const r = await trends(q);
      expect(r.status).toBe(400);
      expect(r.text).toMatch(text);
    }
  });
});

describe("page reports read the page totals", () => {
  test("page-keyword-performance: Google's page totals, weighted ctr and position; keywords from the detail", async () => {
    const r = await call("POST", "/api/v1/page-keyword-performance", { site_id: site });
    expect(r.status).toBe(200);
    // /a: 12 + 6 + 10 = 28 clicks, 150 + 90 + 100 = 340 impressions, Σ = 2×150 + 4×90 + 1.5×100 = 810;
    // plus day 3 derived from the detail (1 click, 10 impressions at 1): 29, 350, 820.
    expect(r.json.data).toEqual([
      {
        url: `${P}/a`,
        total_clicks: 29,
        total_impressions: 350,
        avg_ctr: 8.286, // 29 / 350 × 100
        avg_position: 2.34, // 820 / 350
        keywords: ["alpha", "beta", "gamma"],
        keyword_count: 3,
      },
      { url: `${P}/b`, total_clicks: 6, total_impressions: 120, avg_ctr: 5, avg_position: 7, keywords: ["alpha"], keyword_count: 1 },
    ]);
    const csv = await call("GET", `/api/v1/page-keyword-performance/csv?site_id=${site}`);
    expect(csv.text).toContain(`${P}/a,29,350,8.2860,2.3,alpha|beta|gamma,3\r\n`);
    const mobile = await call("POST", "/api/v1/page-keyword-performance", { site_id: site, device: "MOBILE" });
    expect(mobile.json.data).toEqual([
      { url: `${P}/a`, total_clicks: 6, total_impressions: 90, avg_ctr: 6.667, avg_position: 4, keywords: ["beta"], keyword_count: 1 },
    ]);
  });
  test("page-keyword-performance: a few of many pages (each kept page's days sought by key) as the first of every page", async () => {
    const r = await call("POST", "/api/v1/sites", { domain: "sc-domain:many-pages.example", name: "many pages" });
    const id: number = r.json.id;
    const M = "https://many-pages.example";
    // 9 pages (max_results 2: 2 x 4 <= 9 pages, the sought path); page i has i + 1 queries on D1 and D2, a row
    // without clicks or impressions (no keyword) and a mobile row on D3 (device filter).
    for (const [n, day] of [D1, D2, D3].entries()) {
      const rows = [];
      const totals = [];
      for (let i = 0; i < 9; i++) {
        const page = `${M}/p${i}`;
        for (let q = 0; q <= i && n < 2; q++)
          rows.push({ page, query: `q${q}-${n}`, device: "DESKTOP", clicks: i, impressions: 10 + q, ctr: 0.1, position: 2 });
        rows.push({ page, query: `zero-${i}`, device: "TABLET", clicks: 0, impressions: 0, ctr: 0, position: 0 });
        if (n === 2) rows.push({ page, query: `mobile-${i}`, device: "MOBILE", clicks: 1, impressions: 5, ctr: 0.2, position: 3 });
        totals.push({
          page,
          country: "usa",
          device: n === 2 ? "MOBILE" : "DESKTOP",
          clicks: 10 * i + n,
          impressions: 100 + i,
          position: 2,
        });
      }
      await storeRows(t.db, id, day, "web", rows);
      await storePageTotals(t.db, id, day, "web", totals);
    }
    for (const device of [undefined, "MOBILE"]) {
      const all = await call("POST", "/api/v1/page-keyword-performance", { site_id: id, max_results: 0, device });
      const few = await call("POST", "/api/v1/page-keyword-performance", { site_id: id, max_results: 2, device });
      expect(all.json.data).toHaveLength(9);
      expect(few.json.data).toEqual(all.json.data.slice(0, 2));
    }
    const top = (await call("POST", "/api/v1/page-keyword-performance", { site_id: id, max_results: 2 })).json.data[0];
    expect(top.url).toBe(`${M}/p8`);
    expect(top.keyword_count).toBe(19); // 9 queries a day on D1 and D2, and mobile-8; never zero-8
  });
});

describe("insights read the same grains", () => {
  const insight = (path: string) => call("GET", `/api/v1/sites/${site}/insights/${path}`);

  test("overview: Google's totals, the anonymized share, pages from the page totals", async () => {
    const r = await insight(`overview?start=${D1}&end=${D2}`);
    expect(r.status).toBe(200);
    // 40 clicks, 500 impressions, Σ sum_position 2050 → 4.1; ctr 0.08; share 1 − 28/40 = 0.3.
    expect(r.json).toMatchObject({ clicks: 40, impressions: 500, ctr: 0.08, position: 4.1, anonymized_clicks_share: 0.3 });
    expect(r.json).toMatchObject({ queries: 2, pages: 2, days_with_data: 2, derived_days: 0 });
    expect(r.json.trend).toEqual([
      { date: D1, clicks: 30, impressions: 400, ctr: 0.075, position: 4.75, derived: false },
      { date: D2, clicks: 10, impressions: 100, ctr: 0.1, position: 1.5, derived: false },
    ]);
    const fra = await insight(`overview?start=${D1}&end=${D2}&country=fra`);
    expect(fra.json).toMatchObject({ clicks: 4, impressions: 100, position: 8, queries: null, pages: 1, country: "fra" });
  });

  test("top pages from the page totals; top queries by country is a 400", async () => {
    const r = await insight(`top?by=page&start=${D1}&end=${D2}`);
    expect(r.json.rows).toEqual([
      { page: `${P}/a`, clicks: 28, impressions: 340, ctr: 0.0824, position: 2.38 }, // 810 / 340
      { page: `${P}/b`, clicks: 6, impressions: 120, ctr: 0.05, position: 7 },
    ]);
    const q = await insight(`top?by=query&start=${D1}&end=${D2}&country=usa`);
    expect(q.status).toBe(400);
    expect(q.text).toMatch(/stores no country/);
  });

  test("compare by page: period totals from the property totals, per page from the page totals", async () => {
    const r = await insight(`compare?by=page&previous_start=${D1}&previous_end=${D1}&current_start=${D2}&current_end=${D2}`);
    expect(r.status).toBe(200);
    expect(r.json.previous).toMatchObject({ clicks: 30, impressions: 400, position: 4.75, days_with_data: 1 });
    expect(r.json.current).toMatchObject({ clicks: 10, impressions: 100, position: 1.5, days_with_data: 1 });
    expect(r.json.clicks_change).toBe(-20);
    // /a: 18 → 10 clicks; /b: 6 → 0.
    expect(r.json.losers.map((l: { page: string; clicks_change: number }) => [l.page, l.clicks_change])).toEqual([
      [`${P}/a`, -8],
      [`${P}/b`, -6],
    ]);
    // /a's position: (2×150 + 4×90) / 240 = 2.75 → 1.5: up by 1.25.
    expect(r.json.position_gains).toEqual([expect.objectContaining({ page: `${P}/a`, position_change: -1.25 })]);
  });
});

describe("the dashboard's charts read the same grains", () => {
  test("the site page's clicks and impressions charts total Google's web totals (the derived day from its detail)", async () => {
    const r = await call("GET", `/ui/sites/${site}`);
    expect(r.status).toBe(200);
    const total = (series: string) => Number(new RegExp(`data-series="${series}"[^>]*data-total="(\\d+)"`).exec(r.text)?.[1]);
    // 30 + 10 + 1 clicks and 400 + 100 + 10 impressions: the API's trend summary above, not the detail's 20 + 8 + 1.
    expect(total("clicks")).toBe(41);
    expect(total("impressions")).toBe(510);
  });
});

describe("MCP tools read the same grains", () => {
  async function tool(name: string, args: Record<string, unknown>) {
    const res = await app.request("/mcp", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }),
    });
    const body = (await res.json()) as { result: { isError?: boolean; structuredContent: any; content: { text: string }[] } };
    if (body.result.isError) throw new Error(body.result.content[0]!.text);
    return body.result.structuredContent;
  }

  test("compare_periods: Google's totals per period, anonymized share, pages from the page totals", async () => {
    const r = await tool("compare_periods", {
      site_id: site,
      period_type: "custom",
      custom_periods: { period1: { start: D1, end: D1 }, period2: { start: D2, end: D2 } },
      breakdown: "page",
    });
    expect(r).toMatchObject({
      period1_clicks: 30,
      period2_clicks: 10,
      clicks_change: -20,
      period1_impressions: 400,
      period2_impressions: 100,
      period1_position: 4.75,
      period2_position: 1.5,
      position_change: -3.25,
      period1_queries: 2,
      period2_queries: 1,
      period1_pages: 2,
      period2_pages: 1,
      period1_derived_days: 0,
    });
    expect(r.period1_anonymized_clicks_share).toBeCloseTo(1 / 3, 12);
    expect(r.period2_anonymized_clicks_share).toBeCloseTo(0.2, 12);
    expect(r.rows.map((x: { page: string; clicks_change: number }) => [x.page, x.clicks_change])).toEqual([
      [`${P}/a`, -8],
      [`${P}/b`, -6],
    ]);
  });

  test("best_pages: page totals, ctr percent, weighted position; search_type discover answers from its totals", async () => {
    const r = await tool("best_pages", { site_id: site, days: 30 });
    expect(r.rows).toEqual([
      {
        page: `${P}/a`,
        total_clicks: 29,
        total_impressions: 350,
        avg_position: expect.closeTo(820 / 350, 9),
        ctr: expect.closeTo((29 / 350) * 100, 9),
      },
      { page: `${P}/b`, total_clicks: 6, total_impressions: 120, avg_position: 7, ctr: 5 },
    ]);
    const overview = await tool("insight_overview", { site_id: site, start: D1, end: D2, search_type: "discover" });
    expect(overview).toMatchObject({ clicks: 50, impressions: 1000, position: 1, pages: 0, queries: 0 });
  });
});

describe("query-level reports read the query detail", () => {
  test("ranking-data: search_type and device filter the detail; country and query-less types are a 400", async () => {
    const body = { site_id: site, start_date: D1, end_date: D3, aggregation_mode: "daily" };
    const desktop = await call("POST", "/api/v1/analytics/ranking-data", { ...body, search_type: "web", device: "DESKTOP" });
    expect(desktop.status).toBe(200);
    // Day 1 desktop: alpha on /a (10, 100 at 2) and /b (5, 50 at 6) → 15 clicks, 150 impressions, position (200 + 300) / 150 rounded half-even.
    expect(desktop.json.data.find((d: { date: string; query: string }) => d.date === D1 && d.query === "alpha")).toMatchObject({
      clicks: 15,
      impressions: 150,
      ctr: 0.1,
      position: 3,
    });
    expect(desktop.json.data.some((d: { query: string }) => d.query === "beta")).toBe(false);
    for (const [extra, text] of [
      [{ country: "usa" }, /stores no country/],
      [{ search_type: "discover" }, /no query dimension/],
      [{ search_type: "googleNews" }, /no query dimension/],
    ] as const) {
      const r = await call("POST", "/api/v1/analytics/ranking-data", { ...body, ...extra });
      expect(r.status).toBe(400);
      expect(r.text).toMatch(text);
    }
  });
});
