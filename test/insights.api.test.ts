import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { addDays, dayRange } from "../src/sync/dates.ts";
import { cli } from "./helpers/cli.ts";
import { withDb } from "./helpers/observe.ts";
import { addSite, storeInspection, storeRows } from "./helpers/rows.ts";
import { request, startServer, type RunningServer } from "./helpers/server.ts";

setDefaultTimeout(60_000);

// The insights (issue 20): each answer checked against sums computed here in plain JS from the rows
// (CTR = Σclicks/Σimpressions, position weighted by impressions), and the same numbers on every
// surface: the API, the MCP tools, the CLI (--json) and the dashboard page.

const E = "2026-06-28"; // the newest day with data: every default window ends here
const H = "https://acme.example";
type Row = { day: string; page: string; query: string; device: string; clicks: number; impressions: number; position: number };
const rows: Row[] = [];
const add = (day: string, page: string, query: string, clicks: number, impressions: number, position: number, device = "DESKTOP") =>
  rows.push({ day, page: `${H}${page}`, query, device, clicks, impressions, position });

// /a gains: 10 clicks in the previous 28 days, 50 in the current ones.
add(addDays(E, -40), "/a", "alpha", 10, 100, 5);
add(addDays(E, -5), "/a", "alpha", 50, 200, 3);
add(addDays(E, -5), "/a", "alpha", 4, 50, 8, "MOBILE");
// /b loses 40 (a brand query).
add(addDays(E, -40), "/b", "beta acme", 60, 300, 2);
add(addDays(E, -5), "/b", "beta acme", 20, 300, 4);
// /c decays over 8 weeks: one day a week, 100, 90, … 30 clicks.
for (let w = 0; w < 8; w++) add(addDays(E, -55 + 7 * w), "/c", "gamma", 100 - 10 * w, 1000, 6);
// "shared q": /d and /e share its impressions (60% / 36%), /a barely (3%).
add(addDays(E, -3), "/d", "shared q", 5, 100, 3);
add(addDays(E, -3), "/e", "shared q", 2, 60, 7);
add(addDays(E, -3), "/a", "shared q", 0, 5, 9);
add(E, "/a", "ACME shop", 3, 30, 1);

/** Clicks, impressions, ctr and weighted position of rows, computed here (rounded as the API rounds). */
function expected(rs: Row[]) {
  const clicks = rs.reduce((a, r) => a + r.clicks, 0);
  const impressions = rs.reduce((a, r) => a + r.impressions, 0);
  const weight = rs.reduce((a, r) => a + r.position * r.impressions, 0);
  return {
    clicks,
    impressions,
    ctr: impressions ? Math.round((clicks / impressions) * 1e4) / 1e4 : null,
    position: impressions ? Math.round((weight / impressions) * 100) / 100 : null,
  };
}
const between = (a: string, b: string) => rows.filter((r) => r.day >= a && r.day <= b);

let s: RunningServer;
let siteId = 0;
const api = async (path: string) => {
  const r = await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/${path}`);
  expect({ path, status: r.status }).toEqual({ path, status: 200 });
  return r.body;
};

beforeAll(async () => {
  s = await startServer({ workers: 1, env: { SYNC_SCHEDULER: "false" } });
  await withDb(s.dbPath, async (db) => {
    siteId = await addSite(db, "sc-domain:acme.example", "Acme");
    for (const r of rows) await storeRows(db, siteId, r.day, "web", [{ ...r, ctr: r.clicks / r.impressions }]);
    // URL inspection: /a inspected twice (passing, then dropped from the index), /c passing, /e excluded.
    await storeInspection(db, siteId, `${H}/a`, { verdict: "PASS", coverageState: "Submitted and indexed" }, "2026-06-01T10:00:00.000Z");
    await storeInspection(
      db,
      siteId,
      `${H}/a`,
      { verdict: "FAIL", coverageState: "Crawled - currently not indexed" },
      "2026-06-29T10:00:00.000Z",
    );
    await storeInspection(db, siteId, `${H}/c`, { verdict: "PASS", coverageState: "Submitted and indexed" }, "2026-06-29T10:00:00.000Z");
    await storeInspection(
      db,
      siteId,
      `${H}/e`,
      { verdict: "NEUTRAL", coverageState: "Excluded by 'noindex' tag", googleCanonical: `${H}/d` },
      "2026-06-29T11:00:00.000Z",
    );
  });
  expect((await request(s.url, "PUT", `/api/v1/sites/${siteId}/brand-terms`, { terms: ["Acme", "acme "] })).body.terms).toEqual(["acme"]);
});
afterAll(async () => {
  await s?.cleanup();
});

describe("each insight against sums computed from the rows", () => {
  test("overview: the 28 days ending at the newest day, totals and the trend with gaps", async () => {
    const o = await api("overview");
    const start = addDays(E, -27);
    const inWindow = between(start, E);
    expect(o).toMatchObject({ start, end: E, search_type: "web", ...expected(inWindow), days: 28, anonymized_clicks_share: null });
    const withData = [...new Set(inWindow.map((r) => r.day))].sort();
    expect(o.trend.map((t: { date: string }) => t.date)).toEqual(withData);
    // These rows are query detail only (no property totals stored): each day is derived from it, and says so.
    expect(o.trend.find((t: { date: string }) => t.date === addDays(E, -5))).toEqual({
      date: addDays(E, -5),
      ...expected(inWindow.filter((r) => r.day === addDays(E, -5))),
      derived: true,
    });
    expect(o.derived_days).toBe(withData.length);
    // A device filter narrows every number.
    const mobile = await api("overview?device=MOBILE");
    expect(mobile).toMatchObject(expected(inWindow.filter((r) => r.device === "MOBILE")));
  });

  test("top pages and queries, with a text filter", async () => {
    const t = await api("top?by=page&limit=2");
    const byPage = (p: string) => expected(between(addDays(E, -27), E).filter((r) => r.page === `${H}${p}`));
    expect(t.rows).toEqual([
      { page: `${H}/c`, ...byPage("/c") },
      { page: `${H}/a`, ...byPage("/a") },
    ]);
    const q = await api("top?by=query&contains=ACME");
    expect(q.rows.map((r: { query: string }) => r.query)).toEqual(["beta acme", "ACME shop"]);
  });

  test("compare: the last 28 days vs the 28 before, winners and losers by clicks", async () => {
    const c = await api("compare?by=page");
    const cur = { start: addDays(E, -27), end: E };
    const prev = { start: addDays(E, -55), end: addDays(E, -28) };
    const daysWithData = (p: { start: string; end: string }) => new Set(between(p.start, p.end).map((r) => r.day)).size;
    expect(c.current).toEqual({ ...cur, ...expected(between(cur.start, cur.end)), days: 28, days_with_data: daysWithData(cur) });
    expect(c.previous).toEqual({ ...prev, ...expected(between(prev.start, prev.end)), days: 28, days_with_data: daysWithData(prev) });
    expect(c.winners.map((w: { page: string; clicks_change: number }) => [w.page, w.clicks_change])).toEqual([
      [`${H}/a`, 50 + 4 + 3 - 10],
      [`${H}/d`, 5],
      [`${H}/e`, 2],
    ]);
    expect(c.losers.map((w: { page: string; clicks_change: number }) => [w.page, w.clicks_change])).toEqual([
      [`${H}/c`, 60 + 50 + 40 + 30 - (100 + 90 + 80 + 70)],
      [`${H}/b`, -40],
    ]);
    const a = c.winners[0];
    const aRows = (p: { start: string; end: string }) => between(p.start, p.end).filter((r) => r.page === `${H}/a`);
    expect(a.position_change).toBe(Math.round((expected(aRows(cur)).position! - expected(aRows(prev)).position!) * 100) / 100);
  });

  test("decay: the page losing clicks week after week", async () => {
    const d = await api("decay?weeks=8");
    expect(d.pages).toEqual([
      {
        page: `${H}/c`,
        weekly_clicks: [100, 90, 80, 70, 60, 50, 40, 30],
        first_week_clicks: 100,
        last_week_clicks: 30,
        clicks_lost: 70,
        change_pct: -70,
        trend_per_week: -10,
      },
    ]);
    expect(d.weeks[0].start).toBe(addDays(E, -55));
  });

  test("cannibalization: the query two pages share, with their shares", async () => {
    const c = await api("cannibalization");
    expect(c.queries).toHaveLength(1);
    expect(c.queries[0]).toMatchObject({ query: "shared q", impressions: 165, competing_pages: 2 });
    expect(c.queries[0].pages.map((p: { page: string; impressions_share: number }) => [p.page, p.impressions_share])).toEqual([
      [`${H}/d`, Math.round((100 / 165) * 1e4) / 1e4],
      [`${H}/e`, Math.round((60 / 165) * 1e4) / 1e4],
      [`${H}/a`, Math.round((5 / 165) * 1e4) / 1e4],
    ]);
  });

  test("brand vs non-brand by the stored terms (case-insensitive)", async () => {
    const b = await api("brand");
    const inWindow = between(addDays(E, -27), E);
    const isBrand = (r: Row) => r.query.toLowerCase().includes("acme");
    expect(b.terms).toEqual(["acme"]);
    expect(b.brand).toEqual({ ...expected(inWindow.filter(isBrand)), queries: 2 });
    expect(b.non_brand).toEqual({ ...expected(inWindow.filter((r) => !isBrand(r))), queries: 3 });
  });

  test("index: pages per coverage state, the not-indexed pages by clicks in the window, top pages never inspected", async () => {
    const x = await api("index");
    const inWindow = between(addDays(E, -27), E);
    const clicksOf = (p: string) => expected(inWindow.filter((r) => r.page === `${H}${p}`));
    expect(x).toMatchObject({
      start: addDays(E, -27),
      end: E,
      inspected_pages: 3,
      last_inspected_at: "2026-06-29T11:00:00.000Z",
      // Each page's newest inspection: /a's FAIL, not its earlier PASS.
      by_verdict: [
        { verdict: "FAIL", pages: 1 },
        { verdict: "NEUTRAL", pages: 1 },
        { verdict: "PASS", pages: 1 },
      ],
      not_passing_pages: 2,
      not_passing_with_clicks: 2,
      not_passing_clicks: clicksOf("/a").clicks + clicksOf("/e").clicks,
    });
    expect(x.by_coverage).toContainEqual({ coverage_state: "Crawled - currently not indexed", verdict: "FAIL", pages: 1 });
    expect(
      x.pages.map((p: Record<string, unknown>) => [p.page, p.clicks, p.impressions, p.ctr, p.position, p.verdict, p.coverage_state]),
    ).toEqual([
      [`${H}/a`, ...Object.values(clicksOf("/a")), "FAIL", "Crawled - currently not indexed"],
      [`${H}/e`, ...Object.values(clicksOf("/e")), "NEUTRAL", "Excluded by 'noindex' tag"],
    ]);
    expect(x.pages[1].google_canonical).toBe(`${H}/d`);
    // The window's pages by clicks: /c, /a, /b, /d, /e; /b and /d were never inspected.
    expect(x.top_pages_checked).toBe(5);
    expect(x.uninspected_top_pages.map((p: { page: string }) => p.page)).toEqual([`${H}/b`, `${H}/d`]);
    expect((await api("index?limit=1")).pages).toHaveLength(1);
    // The CLI's table: the same pages.
    const text = await cli(["insights", String(siteId), "--kind", "index"], { env: { SITESYNC_URL: s.url } });
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: "" });
    expect(text.stdout).toContain(`3 pages inspected, 2 not passing (${x.not_passing_clicks} clicks`);
    expect(text.stdout).toMatch(new RegExp(`${H}/a\\s+${clicksOf("/a").clicks}\\s+${clicksOf("/a").impressions}\\s+FAIL`));
    expect(text.stdout).toContain("2 of the 5 pages with the most clicks were never inspected.");
  });

  test("bad input: 400; unknown site: 404", async () => {
    expect((await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/overview?start=2026-02-30`)).status).toBe(400);
    expect((await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/overview?start=${E}&end=${addDays(E, -1)}`)).status).toBe(400);
    expect((await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/decay?min_drop=2`)).status).toBe(400);
    expect((await request(s.url, "GET", "/api/v1/sites/99999/insights/overview")).status).toBe(404);
  });
});

describe("the same numbers on every surface", () => {
  const kinds = [
    ["overview", "overview", {}],
    ["top", "top", { by: "page" }],
    ["compare", "compare", { by: "page" }],
    ["decay", "decay", {}],
    ["cannibalization", "cannibalization", {}],
    ["brand", "brand", {}],
    ["index", "index", {}],
  ] as const;

  for (const [kind, tool, args] of kinds) {
    test(`${kind}: API = MCP insight_${tool} = CLI --json`, async () => {
      const query = new URLSearchParams(args as Record<string, string>).toString();
      const fromApi = await api(`${kind}${query ? `?${query}` : ""}`);
      const mcp = await request(
        s.url,
        "POST",
        "/mcp",
        { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: `insight_${tool}`, arguments: { site_id: siteId, ...args } } },
        { accept: "application/json, text/event-stream" },
      );
      expect(mcp.body.result.isError).toBeUndefined();
      expect(mcp.body.result.structuredContent).toEqual(fromApi);
      const byFlag = "by" in args ? ["--by", args.by] : [];
      const r = await cli(["--json", "insights", String(siteId), "--kind", kind, ...byFlag], { env: { SITESYNC_URL: s.url } });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(JSON.parse(r.stdout)).toEqual(fromApi);
    });
  }

  test("CLI trends: the API's property-total trend as a table (these days derived from the detail, and marked)", async () => {
    const api = await request(s.url, "GET", `/api/v1/analytics/performance-trends?site_id=${siteId}&days=5`);
    const r = await cli(["trends", String(siteId), "--days", "5"], { env: { SITESYNC_URL: s.url } });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const first = api.body.data[0];
    expect(r.stdout).toMatch(new RegExp(`${first.date}\\s+${first.total_clicks}\\s+${first.total_impressions}\\s.*derived`));
    expect(r.stdout).toContain(`Total: ${api.body.summary.total_clicks} clicks`);
    expect(r.stdout).toContain("queries Google does not name: unknown");
    const json = await cli(["--json", "trends", String(siteId), "--days", "5", "--country", "usa"], { env: { SITESYNC_URL: s.url } });
    expect(JSON.parse(json.stdout).summary.unique_queries).toBeNull();
  });

  test("the dashboard's insights page shows the API's numbers", async () => {
    const res = await fetch(`${s.url}/ui/insights?site_id=${siteId}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    const o = await api("overview");
    expect(html).toContain(`data-insight="overview" data-clicks="${o.clicks}" data-impressions="${o.impressions}"`);
    const c = await api("compare?by=page&limit=10");
    expect(html).toContain(`data-insight="compare" data-clicks-change="${c.clicks_change}"`);
    // Few days of either period have data here: the page says the comparison overstates.
    expect(c.previous.days_with_data).toBeLessThan(28);
    expect(html).toContain('data-partial="true"');
    for (const w of [...c.winners, ...c.losers]) expect(html).toContain(`data-key="${w.page}" data-clicks-change="${w.clicks_change}"`);
    const d = await api("decay");
    for (const p of d.pages) expect(html).toContain(`data-key="${p.page}" data-clicks-lost="${p.clicks_lost}"`);
    const k = await api("cannibalization");
    for (const q of k.queries) expect(html).toContain(`data-key="${q.query}" data-pages="${q.competing_pages}"`);
    const b = await api("brand");
    expect(html).toContain(`data-insight="brand" data-brand-clicks="${b.brand.clicks}"`);
    const x = await api("index");
    expect(html).toContain(
      `data-insight="index" data-inspected="${x.inspected_pages}" data-not-passing="${x.not_passing_pages}" data-not-passing-clicks="${x.not_passing_clicks}"`,
    );
    for (const p of x.pages) expect(html).toContain(`data-key="${p.page}" data-clicks="${p.clicks}"`);
    // The trend chart leaves the days without data blank: as many points as days with data.
    expect(html).toContain(`data-days="${o.trend.length}"`);
    expect(dayRange(o.start, o.end)).toHaveLength(28);
  });
});

describe("the dashboard's country field", () => {
  test("narrows the totals and page reports like the API; the query reports say why they are not shown; a bad code is a 400", async () => {
    const res = await fetch(`${s.url}/ui/insights?site_id=${siteId}&country=USA`);
    expect(res.status).toBe(200);
    const html = await res.text();
    const o = await api("overview?country=usa");
    expect(html).toContain(`data-insight="overview" data-clicks="${o.clicks}" data-impressions="${o.impressions}"`);
    expect(html).toContain('name="country" value="usa"');
    const top = await api("top?by=page&country=usa&limit=10");
    for (const r of top.rows) expect(html).toContain(`data-key="${r.page}" data-clicks="${r.clicks}"`);
    // Cannibalization, brand and top queries read the query detail, which has no country.
    expect(html.match(/data-insight-unavailable="country"/g)).toHaveLength(3);
    expect((await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/cannibalization?country=usa`)).status).toBe(400);
    expect((await request(s.url, "GET", `/api/v1/sites/${siteId}/insights/brand?country=usa`)).status).toBe(400);
    // The search type: the API's numbers for it; discover and googleNews have no queries, said instead.
    const image = await (await fetch(`${s.url}/ui/insights?site_id=${siteId}&search_type=image`)).text();
    const io = await api("overview?search_type=image");
    expect(image).toContain(`data-insight="overview" data-clicks="${io.clicks}" data-impressions="${io.impressions}"`);
    expect(image).toContain('<option value="image" selected="">image</option>');
    const discover = await fetch(`${s.url}/ui/insights?site_id=${siteId}&search_type=discover`);
    expect(discover.status).toBe(200);
    expect((await discover.text()).match(/data-insight-unavailable="search_type"/g)).toHaveLength(3);
    expect((await fetch(`${s.url}/ui/insights?site_id=${siteId}&search_type=discover&device=MOBILE`)).status).toBe(400);
    const bad = await fetch(`${s.url}/ui/insights?site_id=${siteId}&country=us`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("ISO 3166-1 alpha-3");
  });
});
