import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { addDays } from "../src/sync/dates.ts";
import { demoRows, demoTotals } from "../src/sync/demo.ts";
import { searchTypes, typeRules } from "../src/sync/search-types.ts";
import { runScript } from "./helpers/client.ts";
import { testEngine } from "./helpers/db.ts";
import { stableToday } from "./helpers/day.ts";
import { pgValue } from "./helpers/engine.ts";
import { withDb } from "./helpers/observe.ts";
import { storeCompleteness, storeHourlyRows, storeOldRows } from "./helpers/rows.ts";
import { request, serviceFile, startServer, type RunningServer } from "./helpers/server.ts";
import { waitFor } from "./helpers/sync.ts";

// The MCP server at /mcp, driven by the SDK's own client over Streamable HTTP, against the real service
// (2 HTTP workers, 1 sync worker) on a temp database: one site synced by the demo source, and sites with
// hand-written rows whose answers are known exactly.

setDefaultTimeout(90_000);

const DEMO_ROWS = 48;
// The query tool's time limit, which the runaway tests spin for. Not lower: it counts from the runner's READY to its
// exit (opening the file, the statement, the exit), and at load ~20 that took up to 0.66 s for a one-row count
// (p90 0.13-0.30 s); at 500 ms the 20 concurrent calls failed once in 12 runs.
const TIMEOUT_MS = 1500;
const root = join(import.meta.dir, "..");
const runnerPath = join(root, "src/mcp/sql-runner.ts");

let server: RunningServer;
let client: Client;
const ids = { demo: 0, shop: 0, recent: 0, week: 0, gone: 0 };
const today = await stableToday();
const demoDays = [addDays(today, -4), addDays(today, -3), addDays(today, -2)];

type Row = { date: string; page: string; query: string; type?: string; clicks: number; impressions: number; position: number };

async function seed(siteId: number, rows: Row[]) {
  await withDb(server.dbPath, (db) =>
    storeOldRows(
      db,
      rows.map((r) => ({
        site_id: siteId,
        date: r.date,
        page: r.page,
        query: r.query,
        device: "MOBILE",
        search_type: r.type ?? "web",
        clicks: r.clicks,
        impressions: r.impressions,
        ctr: r.clicks / r.impressions,
        position: r.position,
      })),
    ),
  );
}

/** PostgreSQL: the service's `query` tool connections on the server's database that are running a statement. */
async function pgQueriesRunning(): Promise<number> {
  const name = new URL(server.dbPath).pathname.slice(1);
  return Number(
    await pgValue(
      `select count(*) from pg_stat_activity where datname = '${name}' and application_name like 'sitesync-%-mcp-query' and state = 'active'`,
    ),
  );
}

/**
 * Pids of live processes whose command line mentions `needle` (read from /proc: no `ps` needed), or with `own`
 * only those under this file's server: another test file may run its own servers beside this one
 * (TEST_JOBS=2), and SIGKILLing their workers broke it (ui.browser, ECONNREFUSED from then on).
 */
function processesRunning(needle: string, own = false): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle) && (!own || underServer(Number(entry)))) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

/** Whether `pid` descends from this file's server (its supervisor). */
function underServer(pid: number): boolean {
  for (let p = pid, depth = 0; p > 1 && depth < 16; p = parentOf(p), depth++) if (p === server.proc.pid) return true;
  return false;
}

/** The parent pid of a process (field 4 of /proc/<pid>/stat, after the command name in parentheses). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Calls a tool and returns its structured result; fails the test on a tool error. */
async function call(name: string, args: Record<string, unknown>): Promise<any> {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name} failed: ${JSON.stringify(res.content)}`);
  // The text content carries the same JSON, for clients that do not read structured content.
  expect(JSON.parse((res.content as { text: string }[])[0]!.text)).toEqual(res.structuredContent);
  return res.structuredContent;
}

/** Calls a tool that must fail and returns its error text. */
async function callError(name: string, args: Record<string, unknown>): Promise<string> {
  const res = await client.callTool({ name, arguments: args });
  expect(res.isError).toBe(true);
  const text = (res.content as { text: string }[])[0]!.text;
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+/); // no stack trace
  return text;
}

async function createSite(domain: string): Promise<number> {
  const res = await request(server.url, "POST", "/api/v1/sites", { domain, name: domain });
  expect(res.status).toBe(201);
  return res.body.id;
}

// --- Expected answers computed independently from the demo source's rows, in plain JS ---

const demoUrl = "sc-domain:demo.example";
// The demo generator always sets every metric, which its type (the insert shape) leaves optional. Only the
// types with a query dimension have query detail (discover and googleNews: totals only, Google's rule).
const demoData = demoDays.flatMap((date) =>
  searchTypes
    .filter((type) => typeRules(type).query)
    .flatMap((type) =>
      demoRows(demoUrl, date, type, DEMO_ROWS).map((r) => ({
        ...r,
        clicks: r.clicks!,
        impressions: r.impressions!,
        position: r.position!,
        date,
        type,
      })),
    ),
);
type DemoRow = (typeof demoData)[number];

/** Groups rows by key and sums clicks/impressions; position impression-weighted (Σ position × impressions / Σ impressions). */
function aggregate(rows: DemoRow[], key: (r: DemoRow) => string) {
  const groups = new Map<string, { rows: DemoRow[] }>();
  for (const r of rows) (groups.get(key(r)) ?? groups.set(key(r), { rows: [] }).get(key(r))!).rows.push(r);
  return [...groups].map(([k, g]) => ({
    key: k,
    clicks: g.rows.reduce((a, r) => a + r.clicks, 0),
    impressions: g.rows.reduce((a, r) => a + r.impressions, 0),
    position: expect.closeTo(
      g.rows.reduce((a, r) => a + r.position * r.impressions, 0) /
        Math.max(
          1,
          g.rows.reduce((a, r) => a + r.impressions, 0),
        ),
      9,
    ),
  }));
}
const byDesc =
  <T>(f: (x: T) => number, tie: (x: T) => string) =>
  (a: T, b: T) =>
    f(b) - f(a) || (tie(a) < tie(b) ? -1 : tie(a) > tie(b) ? 1 : 0);

beforeAll(async () => {
  server = await startServer({
    workers: 2,
    syncWorkers: 1,
    env: {
      SYNC_SOURCE: "demo",
      DEMO_ROWS_PER_DAY: String(DEMO_ROWS),
      SYNC_SCHEDULER: "false",
      SYNC_POLL_MS: "50",
      MCP_QUERY_TIMEOUT_MS: String(TIMEOUT_MS),
    },
  });
  ids.demo = await createSite(demoUrl);
  ids.shop = await createSite("sc-domain:shop.example");
  ids.recent = await createSite("https://recent.example/");
  ids.week = await createSite("sc-domain:week.example");
  // An archived site: hidden from lists, its data kept.
  ids.gone = await createSite("sc-domain:gone.example");
  await seed(ids.gone, [{ date: "2026-01-06", page: "https://gone.example/", query: "gone", clicks: 1, impressions: 2, position: 1 }]);
  expect((await request(server.url, "DELETE", `/api/v1/sites/${ids.gone}`)).status).toBe(204);

  // The demo site's data comes from a real sync: the last 3 days Search Console has (today-4 .. today-2).
  const trigger = await request(server.url, "POST", `/api/v1/sync/trigger/${ids.demo}?days=3`);
  expect(trigger.status).toBe(202);
  await waitFor("the demo sync to complete", async () => {
    const job = await request(server.url, "GET", `/api/v1/sync/job/${trigger.body.job_id}`);
    if (job.body.status === "failed") throw new Error(`sync failed: ${job.body.error}`);
    return job.body.status === "completed";
  });

  // shop.example: two fixed weeks. Period 1 is 2026-01-05..11, period 2 is 2026-01-12..18.
  await seed(ids.shop, [
    { date: "2026-01-06", page: "https://shop.example/a", query: "q1", clicks: 10, impressions: 100, position: 2 },
    { date: "2026-01-07", page: "https://shop.example/a", query: "q2", clicks: 5, impressions: 50, position: 4 },
    { date: "2026-01-13", page: "https://shop.example/a", query: "q1", clicks: 3, impressions: 80, position: 5 },
    { date: "2026-01-08", page: "https://shop.example/b", query: "q3", clicks: 2, impressions: 20, position: 10 },
    { date: "2026-01-14", page: "https://shop.example/b", query: "q3", clicks: 9, impressions: 90, position: 3 },
    { date: "2026-01-15", page: "https://shop.example/c", query: "q4", clicks: 4, impressions: 40, position: 6 },
    { date: "2026-01-09", page: "https://shop.example/d", query: "q5", clicks: 7, impressions: 70, position: 8 },
    // Another search type (excluded unless asked for) and a day outside both periods.
    { date: "2026-01-13", page: "https://shop.example/a", query: "q1", type: "image", clicks: 100, impressions: 1000, position: 1 },
    { date: "2026-01-20", page: "https://shop.example/a", query: "q1", clicks: 50, impressions: 500, position: 1 },
  ]);

  // recent.example: its newest day is today-2; x lost clicks in the last 7 days, y gained.
  const newest = addDays(today, -2);
  await seed(ids.recent, [
    { date: addDays(newest, -7), page: "https://recent.example/x", query: "x", clicks: 10, impressions: 100, position: 3 },
    { date: newest, page: "https://recent.example/x", query: "x", clicks: 4, impressions: 90, position: 4 },
    { date: addDays(newest, -13), page: "https://recent.example/y", query: "y", clicks: 1, impressions: 10, position: 9 },
    { date: addDays(newest, -6), page: "https://recent.example/y", query: "y", clicks: 5, impressions: 30, position: 7 },
    // Outside both periods (14 days before the newest).
    { date: addDays(newest, -14), page: "https://recent.example/x", query: "x", clicks: 99, impressions: 999, position: 1 },
  ]);

  // week.example: rows on this week's Monday (UTC) and on the Monday before.
  const monday = addDays(today, -((new Date(`${today}T00:00:00Z`).getUTCDay() + 6) % 7));
  await seed(ids.week, [
    { date: addDays(monday, -7), page: "https://week.example/p", query: "p", clicks: 8, impressions: 80, position: 2 },
    { date: monday, page: "https://week.example/p", query: "p", clicks: 2, impressions: 40, position: 5 },
    { date: addDays(monday, -8), page: "https://week.example/p", query: "p", clicks: 70, impressions: 700, position: 1 },
  ]);

  // Hourly rows of shop.example (as the hourly sync stores them).
  await withDb(server.dbPath, (db) =>
    storeHourlyRows(
      db,
      ids.shop,
      (
        [
          [9, "q1", 2, 20],
          [9, "q2", 1, 5],
          [10, "q1", 4, 30],
        ] as const
      ).map(([hour, query, clicks, impressions]) => ({
        date: "2026-01-13",
        hour,
        hour_timestamp: `2026-01-13T${String(hour).padStart(2, "0")}:00:00-08:00`,
        query,
        page: "https://shop.example/a",
        device: "MOBILE",
        clicks,
        impressions,
        ctr: 0,
        position: 3,
      })),
    ),
  );

  client = new Client({ name: "sitesync-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`)));
});

afterAll(async () => {
  await client?.close();
  await server?.cleanup();
});

describe("tools", () => {
  test("tools/list names the original's tools (plus list_sites and the insights), each with a JSON Schema of its input", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        "best_pages",
        "compare_periods",
        "get_index_status",
        "get_sitemaps",
        "get_sync_status",
        "insight_brand",
        "insight_cannibalization",
        "insight_compare",
        "insight_decay",
        "insight_index",
        "insight_overview",
        "insight_top",
        "list_sites",
        "pages_queries",
        "query",
        "search_keywords",
        "show_keyword_pages",
        "show_page_queries",
        "track_pages",
      ].sort(),
    );
    for (const t of tools) {
      expect(t.inputSchema.type).toBe("object");
      expect(t.description!.length).toBeGreaterThan(20);
      expect(t.annotations?.readOnlyHint).toBe(true);
    }
    const compare = tools.find((t) => t.name === "compare_periods")!;
    expect((compare.inputSchema.properties as any).period_type.enum).toEqual(["week", "month", "last_7_days", "custom"]);
    expect((tools.find((t) => t.name === "show_page_queries")!.inputSchema.required as string[]).sort()).toEqual(["page"]);
  });

  test("list_sites lists the registered sites by name; archived ones on request, still readable", async () => {
    const pairs = (r: { sites: { id: number; domain: string }[] }) => r.sites.map((s) => [s.id, s.domain]);
    const live = [
      [ids.recent, "https://recent.example/"],
      [ids.demo, "sc-domain:demo.example"],
      [ids.shop, "sc-domain:shop.example"],
      [ids.week, "sc-domain:week.example"],
    ];
    expect(pairs(await call("list_sites", {}))).toEqual(live);
    expect(pairs(await call("list_sites", { include_archived: true }))).toEqual([
      ...live.slice(0, 2),
      [ids.gone, "sc-domain:gone.example"],
      ...live.slice(2),
    ]);
    expect((await call("pages_queries", { site_id: ids.gone, pages: ["https://gone.example/"] })).rows).toEqual([
      { page: "https://gone.example/", query: "gone", clicks: 1, impressions: 2, avg_position: 1 },
    ]);
  });

  test("show_page_queries: the page's queries over the synced demo days, most impressions first", async () => {
    const page = "https://demo.example/running-shoes";
    const expected = aggregate(
      demoData.filter((r) => r.type === "web" && r.page === page),
      (r) => r.query,
    )
      .sort(
        byDesc(
          (x) => x.impressions,
          (x) => x.key,
        ),
      )
      .map((x) => ({ query: x.key, clicks: x.clicks, impressions: x.impressions, avg_position: x.position }));
    expect(expected.length).toBe(2); // "best running shoes" and "cheap running shoes"
    const r = await call("show_page_queries", { hostname: "demo.example", page });
    expect(r).toEqual({ site_id: ids.demo, since: addDays(today, -30), rows: expected });
  });

  test("show_keyword_pages: the pages one query led to (all search types summed)", async () => {
    const keyword = "cheap yoga mats";
    const expected = aggregate(
      demoData.filter((r) => r.query === keyword),
      (r) => r.page,
    ).map((x) => ({
      page: x.key,
      avg_position: x.position,
      total_clicks: x.clicks,
      total_impressions: x.impressions,
    }));
    expect(expected.length).toBe(1);
    const r = await call("show_keyword_pages", { site_id: ids.demo, keyword, search_type: "all", days: 7 });
    expect(r).toEqual({ site_id: ids.demo, since: addDays(today, -7), rows: expected });
  });

  test("search_keywords: a LIKE pattern, most impressions first", async () => {
    const expected = aggregate(
      demoData.filter((r) => r.type === "web" && r.query.includes("running")),
      (r) => r.query,
    )
      .sort(
        byDesc(
          (x) => x.impressions,
          (x) => x.key,
        ),
      )
      .map((x) => ({ query: x.key, total_clicks: x.clicks, total_impressions: x.impressions, avg_position: x.position }));
    expect(expected.map((x) => x.query).sort()).toEqual([
      "best running shoes",
      "best trail running",
      "cheap running shoes",
      "cheap trail running",
    ]);
    const r = await call("search_keywords", { site_id: ids.demo, pattern: "%RUNNING%" });
    expect(r.rows).toEqual(expected);
  });

  test("best_pages: the most clicked pages with ctr in percent", async () => {
    // Search Console's page totals (the demo source's: its query rows plus the anonymized queries they leave out), web.
    const pages = new Map<string, { clicks: number; impressions: number; sp: number }>();
    for (const day of demoDays) {
      for (const t of demoTotals(demoUrl, day, "web", "page", DEMO_ROWS)) {
        const p = pages.get(t.page!) ?? { clicks: 0, impressions: 0, sp: 0 };
        p.clicks += t.clicks;
        p.impressions += t.impressions;
        p.sp += t.position * t.impressions;
        pages.set(t.page!, p);
      }
    }
    const expected = [...pages.entries()]
      .map(([key, p]) => ({ key, ...p }))
      .sort(
        byDesc(
          (x) => x.clicks,
          (x) => x.key,
        ),
      )
      .slice(0, 3)
      .map((x) => ({
        page: x.key,
        total_clicks: x.clicks,
        total_impressions: x.impressions,
        avg_position: expect.closeTo(x.sp / x.impressions, 2),
        ctr: expect.closeTo((x.clicks / x.impressions) * 100, 9),
      }));
    const r = await call("best_pages", { hostname: "sc-domain:demo.example", limit: 3 });
    expect(r.rows).toEqual(expected);
  });

  test("track_pages: day by day for the given pages and queries, newest day first", async () => {
    const page = "https://demo.example/hiking-boots";
    const rows = demoData.filter((r) => r.type === "web" && r.page === page && r.query === "best hiking boots");
    const r = await call("track_pages", { site_id: ids.demo, pages: [page], keywords: ["best hiking boots"] });
    expect(r.rows).toEqual(
      [...rows]
        .sort((a, b) => (a.date < b.date ? 1 : -1))
        .map((x) => ({
          date: x.date,
          page,
          query: "best hiking boots",
          clicks: x.clicks,
          impressions: x.impressions,
          position: expect.closeTo(x.position, 9),
        })),
    );
    expect(r.rows.map((x: { date: string }) => x.date)).toEqual([...demoDays].reverse());
  });

  test("pages_queries: every query of the given pages over all days, by page then impressions", async () => {
    const r = await call("pages_queries", {
      site_id: ids.shop,
      pages: ["https://shop.example/b", "https://shop.example/a"],
    });
    expect(r).toEqual({
      site_id: ids.shop,
      rows: [
        { page: "https://shop.example/a", query: "q1", clicks: 63, impressions: 680, avg_position: expect.closeTo(1100 / 680, 9) }, // (2×100 + 5×80 + 1×500) / 680 (web only)
        { page: "https://shop.example/a", query: "q2", clicks: 5, impressions: 50, avg_position: 4 },
        { page: "https://shop.example/b", query: "q3", clicks: 11, impressions: 110, avg_position: expect.closeTo(470 / 110, 9) }, // (10×20 + 3×90) / 110
      ],
    });
  });
});

describe("compare_periods", () => {
  test("custom periods: the original's totals, and the pages ordered by clicks lost", async () => {
    const r = await call("compare_periods", {
      hostname: "shop.example",
      period_type: "custom",
      custom_periods: { period1: { start: "2026-01-05", end: "2026-01-11" }, period2: { start: "2026-01-12", end: "2026-01-18" } },
    });
    expect(r).toEqual({
      site_id: ids.shop,
      period_type: "custom",
      period1_start: "2026-01-05",
      period1_end: "2026-01-11",
      period2_start: "2026-01-12",
      period2_end: "2026-01-18",
      period1_clicks: 24,
      period2_clicks: 16,
      clicks_change: -8,
      clicks_change_pct: expect.closeTo(-100 / 3, 9),
      period1_impressions: 240,
      period2_impressions: 210,
      impressions_change: -30,
      impressions_change_pct: -12.5,
      period1_position: expect.closeTo(1160 / 240, 9), // (2×100 + 4×50 + 10×20 + 8×70) / 240 (the plain mean was 6)
      period2_position: expect.closeTo(910 / 210, 9), // (5×80 + 3×90 + 6×40) / 210
      position_change: expect.closeTo(910 / 210 - 1160 / 240, 9),
      period1_queries: 4,
      period2_queries: 3,
      period1_pages: 3,
      period2_pages: 3,
      // The shop's rows are query detail only (no property totals stored): every day derived from it, no anonymized share known.
      period1_anonymized_clicks_share: null,
      period2_anonymized_clicks_share: null,
      period1_derived_days: 4,
      period2_derived_days: 3,
      breakdown: "page",
      rows: [
        {
          page: "https://shop.example/a",
          period1_clicks: 15,
          period2_clicks: 3,
          clicks_change: -12,
          clicks_change_pct: -80,
          period1_impressions: 150,
          period2_impressions: 80,
          impressions_change: -70,
          impressions_change_pct: expect.closeTo(-140 / 3, 9),
          period1_position: expect.closeTo(400 / 150, 9), // (2×100 + 4×50) / 150
          period2_position: 5,
          position_change: expect.closeTo(5 - 400 / 150, 9),
        },
        {
          page: "https://shop.example/d",
          period1_clicks: 7,
          period2_clicks: 0,
          clicks_change: -7,
          clicks_change_pct: -100,
          period1_impressions: 70,
          period2_impressions: 0,
          impressions_change: -70,
          impressions_change_pct: -100,
          period1_position: 8,
          period2_position: null,
          position_change: null,
        },
        {
          page: "https://shop.example/c",
          period1_clicks: 0,
          period2_clicks: 4,
          clicks_change: 4,
          clicks_change_pct: 0,
          period1_impressions: 0,
          period2_impressions: 40,
          impressions_change: 40,
          impressions_change_pct: 0,
          period1_position: null,
          period2_position: 6,
          position_change: null,
        },
        {
          page: "https://shop.example/b",
          period1_clicks: 2,
          period2_clicks: 9,
          clicks_change: 7,
          clicks_change_pct: 350,
          period1_impressions: 20,
          period2_impressions: 90,
          impressions_change: 70,
          impressions_change_pct: 350,
          period1_position: 10,
          period2_position: 3,
          position_change: -7,
        },
      ],
    });
  });

  test("breakdown by query, gainers first, limited; search_type all counts the image row", async () => {
    const custom_periods = { period1: { start: "2026-01-05", end: "2026-01-11" }, period2: { start: "2026-01-12", end: "2026-01-18" } };
    const r = await call("compare_periods", {
      site_id: ids.shop,
      period_type: "custom",
      custom_periods,
      breakdown: "query",
      order: "gainers_first",
      limit: 2,
      search_type: "all",
    });
    expect(r.period2_clicks).toBe(116);
    expect(r.rows.map((x: { query: string; clicks_change: number }) => [x.query, x.clicks_change])).toEqual([
      ["q1", 93],
      ["q3", 7],
    ]);
    const totalsOnly = await call("compare_periods", { site_id: ids.shop, period_type: "custom", custom_periods, breakdown: "none" });
    expect(totalsOnly.rows).toBeUndefined();
    expect(totalsOnly.period1_clicks).toBe(24);
  });

  test("last_7_days answers 'which pages lost clicks this week': the 7 newest days with data vs the 7 before", async () => {
    const newest = addDays(today, -2);
    const r = await call("compare_periods", { site_id: ids.recent, period_type: "last_7_days" });
    expect(r).toMatchObject({
      period1_start: addDays(newest, -13),
      period1_end: addDays(newest, -7),
      period2_start: addDays(newest, -6),
      period2_end: newest,
      period1_clicks: 11,
      period2_clicks: 9,
      clicks_change: -2,
    });
    const lost = r.rows.filter((x: { clicks_change: number }) => x.clicks_change < 0);
    expect(lost).toEqual([
      expect.objectContaining({ page: "https://recent.example/x", period1_clicks: 10, period2_clicks: 4, clicks_change: -6 }),
    ]);
    expect(r.rows[1]).toMatchObject({ page: "https://recent.example/y", clicks_change: 4 });
  });

  test("week: last Monday-Sunday vs this Monday-today (UTC), as the original", async () => {
    const monday = addDays(today, -((new Date(`${today}T00:00:00Z`).getUTCDay() + 6) % 7));
    const r = await call("compare_periods", { site_id: ids.week });
    expect(r).toMatchObject({
      period_type: "week",
      period1_start: addDays(monday, -7),
      period1_end: addDays(monday, -1),
      period2_start: monday,
      period2_end: today,
      period1_clicks: 8,
      period2_clicks: 2,
      clicks_change: -6,
      clicks_change_pct: -75,
    });
    expect(r.rows).toEqual([expect.objectContaining({ page: "https://week.example/p", clicks_change: -6 })]);
  });

  test("month: last calendar month vs this month to date", async () => {
    const first = `${today.slice(0, 8)}01`;
    const r = await call("compare_periods", { site_id: ids.week, period_type: "month", breakdown: "none" });
    expect(r).toMatchObject({
      period1_start: `${addDays(first, -1).slice(0, 8)}01`,
      period1_end: addDays(first, -1),
      period2_start: first,
      period2_end: today,
    });
  });
});

describe("query (read-only SQL)", () => {
  test("{site} is the site's rows: a count over the synced demo data", async () => {
    const r = await call("query", {
      hostname: "https://demo.example/",
      sql: "select count(*) as n, count(distinct date) as days from {site} where search_type = 'web'",
    });
    expect(r).toEqual({ site_id: ids.demo, columns: ["n", "days"], rows: [{ n: DEMO_ROWS * 3, days: 3 }], row_count: 1, truncated: false });
    const all = await call("query", { site_id: ids.demo, sql: "select count(*) as n from {site};" });
    expect(all.rows).toEqual([{ n: demoData.length }]);
  });

  test("plain SQL over the synced tables, rows capped by max_rows", async () => {
    const r = await call("query", { sql: "select id, domain from sites order by id", max_rows: 2 });
    expect(r).toEqual({
      site_id: null,
      columns: ["id", "domain"],
      rows: [
        { id: ids.demo, domain: "sc-domain:demo.example" },
        { id: ids.shop, domain: "sc-domain:shop.example" },
      ],
      row_count: 2,
      truncated: true,
    });
    // Only today-4 is final (newer days are still revised by Search Console): one marker per search type.
    const days = await call("query", { sql: `select date, count(*) as n from gsc_synced_days where site_id = ${ids.demo} group by date` });
    expect(days.rows).toEqual([{ date: demoDays[0], n: searchTypes.length }]);
  });

  test("{site_hourly} (or data_type hourly) is the site's hourly rows", async () => {
    const sql = "select hour, sum(clicks) as clicks, sum(impressions) as impressions from {site_hourly} group by hour order by hour";
    const r = await call("query", { hostname: "shop.example", sql });
    expect(r.rows).toEqual([
      { hour: 9, clicks: 3, impressions: 25 },
      { hour: 10, clicks: 4, impressions: 30 },
    ]);
    const same = await call("query", { site_id: ids.shop, data_type: "hourly", sql: sql.replace("{site_hourly}", "{site}") });
    expect(same.rows).toEqual(r.rows);
    // The demo site has no hourly rows: the placeholder is scoped to the site.
    expect((await call("query", { site_id: ids.demo, sql: "select count(*) as n from {site_hourly}" })).rows).toEqual([{ n: 0 }]);
  });

  const writes: [string, string, RegExp][] = [
    ["DELETE", "delete from gsc_performance_data", /only read-only SELECT statements are allowed \(got DELETE\)/],
    ["UPDATE", "update sites set name = 'x'", /only read-only SELECT/],
    ["a write after a CTE", "with s as (select 1) delete from gsc_synced_days", /only read-only SELECT statements are allowed/],
    ["a second statement", "select 1; delete from gsc_performance_data", /only one statement is allowed/],
    ["a temp table", "create temp table t as select * from sites", /only read-only SELECT/],
    ["ATTACH", "attach database ':memory:' as x", /only read-only SELECT.*ATTACH/],
    ["PRAGMA", "pragma query_only = off", /only read-only SELECT.*PRAGMA/],
    ["a table outside the synced data", "select * from sync_tasks", /table 'sync_tasks' cannot be queried/],
    ["the connection registry", "select count(*) from db_connections", /table 'db_connections' cannot be queried/],
    ["the API keys", "select key_hash from api_keys", /table 'api_keys' cannot be queried/],
  ];
  test.each(writes)("refused: %s", async (_name, sql, message) => {
    expect(await callError("query", { sql })).toMatch(message);
  });

  test("after every refused write the data is unchanged", async () => {
    const r = await call("query", {
      sql: "select (select count(*) from gsc_performance_data) as rows, (select count(*) from sites where name = 'x') as renamed",
    });
    expect(r.rows).toEqual([{ rows: demoData.length + 9 + 5 + 3 + 1, renamed: 0 }]);
  });

  test.skipIf(testEngine === "pg")(
    "a runaway recursive CTE is stopped at the time limit, its process is gone, and the server answers (SQLite: a child process)",
    async () => {
      const runaway = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
      const started = performance.now();
      const pending = callError("query", { sql: runaway });
      // While it runs, its child process is visible (so the check below can see one that is left over).
      expect(await waitFor("the runner process to start", () => processesRunning(runnerPath, true).length === 1, 1000, 10)).toBe(true);
      const text = await pending;
      const elapsed = performance.now() - started;
      expect(text).toMatch(new RegExp(`query stopped after \\d+ ms: it ran past the ${TIMEOUT_MS} ms time limit`));
      expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS);
      expect(elapsed).toBeLessThan(TIMEOUT_MS + 10_000);
      // The child that ran it was killed, not left spinning.
      expect(processesRunning(runnerPath, true)).toEqual([]);
      expect((await call("query", { sql: "select 1 as one" })).rows).toEqual([{ one: 1 }]);
    },
  );

  test.skipIf(testEngine === "sqlite")(
    "a runaway recursive CTE is stopped at the time limit by the server (statement_timeout), and the service answers (PostgreSQL)",
    async () => {
      const runaway = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
      const started = performance.now();
      const pending = callError("query", { sql: runaway });
      expect(await waitFor("the statement to run on the server", async () => (await pgQueriesRunning()) === 1, 1000, 10)).toBe(true);
      const text = await pending;
      const elapsed = performance.now() - started;
      expect(text).toMatch(new RegExp(`query stopped after \\d+ ms: it ran past the ${TIMEOUT_MS} ms time limit`));
      expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS);
      expect(elapsed).toBeLessThan(TIMEOUT_MS + 10_000);
      expect(await waitFor("the statement to be gone", async () => (await pgQueriesRunning()) === 0, 2000, 10)).toBe(true);
      expect((await call("query", { sql: "select 1 as one" })).rows).toEqual([{ one: 1 }]);
    },
  );

  test.skipIf(testEngine === "sqlite")(
    "a runaway query of a SIGKILLed HTTP worker ends at the time limit on the server (PostgreSQL)",
    async () => {
      const runaway = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
      const pending = client.callTool({ name: "query", arguments: { sql: runaway } }).then(
        () => "answered",
        () => "failed",
      );
      await waitFor("the statement to run on the server", async () => (await pgQueriesRunning()) === 1, 2000, 10);
      const workers = processesRunning(await serviceFile("server.ts"), true);
      expect(workers.length).toBeGreaterThan(0);
      for (const w of workers) process.kill(w, "SIGKILL");
      // Nothing in the service can stop it any more: the server's statement_timeout does.
      await waitFor("the orphaned statement to end", async () => (await pgQueriesRunning()) === 0, TIMEOUT_MS + 8000, 20);
      expect(await pending).toBe("failed");
      await waitFor("the service to answer", async () => {
        const res = await client.callTool({ name: "query", arguments: { sql: "select 1 as one" } }).catch(() => null);
        return (res?.structuredContent as { rows?: unknown } | undefined)?.rows !== undefined;
      });
    },
  );

  test.skipIf(testEngine === "pg")(
    "a runaway query dies with its HTTP worker when that is SIGKILLed (no orphan left spinning) (SQLite: a child process)",
    async () => {
      const runaway = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
      const pending = client.callTool({ name: "query", arguments: { sql: runaway } }).then(
        () => "answered",
        () => "failed",
      );
      const [runner] = await waitFor(
        "the runner process to start",
        () => {
          const pids = processesRunning(runnerPath, true);
          return pids.length === 1 ? pids : null;
        },
        2000,
        10,
      );
      const worker = parentOf(runner!);
      expect(processesRunning(await serviceFile("server.ts"), true)).toContain(worker);
      process.kill(worker, "SIGKILL");
      // Its parent can no longer kill it: its own watchdog does (at once on seeing the parent gone, at the
      // latest a second past the time limit); without one it would spin forever.
      await waitFor("the orphaned runner to die", () => !processesRunning(runnerPath).includes(runner!), TIMEOUT_MS + 1000 + 8000, 10);
      expect(await pending).toBe("failed");
      // The other worker (and the restarted one) still answer.
      await waitFor("the service to answer", async () => {
        const res = await client.callTool({ name: "query", arguments: { sql: "select 1 as one" } }).catch(() => null);
        return (res?.structuredContent as { rows?: unknown } | undefined)?.rows !== undefined;
      });
    },
  );

  test("SQL errors come back as tool errors with the database's message", async () => {
    const message = testEngine === "pg" ? /SQL error: column "nope" does not exist/ : /SQL error: no such column: nope/;
    expect(await callError("query", { sql: "select nope from sites" })).toMatch(message);
    expect(await callError("query", { sql: "select * from {site}" })).toMatch(/uses \{site\} or \{site_hourly\}: give site_id or hostname/);
  });
});

describe("bad input gives a clear tool error", () => {
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ["missing required argument", "show_page_queries", { site_id: 1 }, /Input validation error.*page/],
    ["days out of range", "best_pages", { site_id: 1, days: 0 }, /Input validation error.*days/],
    ["wrong type", "best_pages", { site_id: "one" }, /Input validation error.*site_id/],
    ["unknown search type", "best_pages", { site_id: 1, search_type: "shopping" }, /Input validation error.*search_type/],
    ["empty pages", "track_pages", { site_id: 1, pages: [] }, /Input validation error.*pages/],
    [
      "bad custom date",
      "compare_periods",
      {
        site_id: 1,
        period_type: "custom",
        custom_periods: { period1: { start: "2026-02-30", end: "2026-03-01" }, period2: { start: "2026-03-02", end: "2026-03-03" } },
      },
      /Input validation error.*YYYY-MM-DD/,
    ],
    [
      "custom period backwards",
      "compare_periods",
      {
        site_id: 1,
        period_type: "custom",
        custom_periods: { period1: { start: "2026-03-05", end: "2026-03-01" }, period2: { start: "2026-03-02", end: "2026-03-03" } },
      },
      /start is after end/,
    ],
    ["custom without periods", "compare_periods", { site_id: 1, period_type: "custom" }, /needs custom_periods/],
    ["no site named", "best_pages", {}, /either site_id or hostname must be provided/i],
    ["unknown site id", "best_pages", { site_id: 999_999 }, /site 999999 not found/i],
    ["unknown hostname", "best_pages", { hostname: "nowhere.example" }, /site not found: nowhere.example/i],
    [
      "no data for last_7_days",
      "compare_periods",
      { hostname: "sc-domain:shop.example", period_type: "last_7_days", search_type: "news" },
      /no synced data/,
    ],
  ];
  test.each(cases)("%s", async (_name, tool, args, message) => {
    expect(await callError(tool, args)).toMatch(message);
  });

  test("an unknown tool", async () => {
    expect(await callError("drop_everything", {})).toMatch(/Tool drop_everything not found/);
  });
});

describe("transport", () => {
  const mcpPost = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  test("stateless: 20 concurrent tools/call with no initialize and no session, on any worker (query calls wait for a slot)", async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        mcpPost({ jsonrpc: "2.0", id: i, method: "tools/call", params: { name: "query", arguments: { sql: `select ${i} as i` } } }).then(
          async (r) => ({
            status: r.status,
            session: r.headers.get("mcp-session-id"),
            body: (await r.json()) as any,
          }),
        ),
      ),
    );
    for (const [i, a] of answers.entries()) {
      expect(a.status).toBe(200);
      expect(a.session).toBeNull();
      expect(a.body).toMatchObject({ jsonrpc: "2.0", id: i, result: { structuredContent: { rows: [{ i }] } } });
    }
  });

  test("GET and DELETE /mcp answer 405 (no server-initiated stream, no sessions)", async () => {
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(`${server.url}/mcp`, { method, headers: { accept: "text/event-stream" } });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
    }
  });

  test("malformed JSON-RPC answers a JSON-RPC parse error, not the REST error shape", async () => {
    const res = await mcpPost("{not json");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32700 } });
    const wrongType = await mcpPost({ jsonrpc: "2.0", id: 1, method: "tools/list" }, { "content-type": "text/plain" });
    expect(wrongType.status).toBe(415);
  });
});

describe("with API keys (AUTH=required)", () => {
  test("an assistant connects with a read key in the Authorization header; without one it is refused", async () => {
    const locked = await startServer({ workers: 1, env: { AUTH: "required" } });
    const clients: Client[] = [];
    try {
      const created = await runScript(root, ["src/auth/cli.ts", "create", "--name", "assistant", "--scope", "read"], {
        DATABASE_URL: locked.dbPath,
      });
      expect(created.code).toBe(0);
      const key = created.stdout.split("\n").find((l) => l.startsWith("ssk_"))!;
      const url = new URL(`${locked.url}/mcp`);

      const anonymous = new Client({ name: "no-key", version: "1.0.0" });
      clients.push(anonymous);
      await expect(anonymous.connect(new StreamableHTTPClientTransport(url))).rejects.toThrow(/unauthorized.*an API key is required/);

      const keyed = new Client({ name: "keyed", version: "1.0.0" });
      clients.push(keyed);
      await keyed.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
      expect((await keyed.callTool({ name: "list_sites", arguments: {} })).isError).toBeFalsy();
      // Arbitrary SQL is not for every read key (issue 21): the query tool needs the 'query' (or admin) scope.
      const refused = await keyed.callTool({ name: "query", arguments: { sql: "select count(*) as n from sites" } });
      expect(refused.isError).toBe(true);
      expect((refused.content as { text: string }[])[0]!.text).toMatch(/needs a key with the 'query' \(or 'admin'\) scope/);

      const q = await runScript(root, ["src/auth/cli.ts", "create", "--name", "analyst", "--scope", "query"], {
        DATABASE_URL: locked.dbPath,
      });
      expect(q.code).toBe(0);
      const queryKey = q.stdout.split("\n").find((l) => l.startsWith("ssk_"))!;
      const analyst = new Client({ name: "analyst", version: "1.0.0" });
      clients.push(analyst);
      await analyst.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${queryKey}` } } }));
      const res = await analyst.callTool({ name: "query", arguments: { sql: "select count(*) as n from sites" } });
      expect(res.structuredContent).toMatchObject({ rows: [{ n: 0 }] });
      // A query key reads like a read key and writes nothing.
      const write = await fetch(`${locked.url}/api/v1/sites`, {
        method: "POST",
        headers: { authorization: `Bearer ${queryKey}`, "content-type": "application/json" },
        body: JSON.stringify({ domain: "sc-domain:q.example", name: "Q" }),
      });
      expect(write.status).toBe(403);
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      await locked.cleanup();
    }
  });
});

describe("completeness", () => {
  test("get_sync_status: each day's completeness per search type and its mark (the worst of its types), as /sync/status has it", async () => {
    const id = await createSite("https://marks.example/");
    const d = (n: number) => addDays("2026-03-10", n);
    await withDb(server.dbPath, async (db) => {
      await storeCompleteness(db, id, d(0), "web", { property_rows: 3, page_rows: 10, detail_rows: 50, anonymized_share: 0.25 });
      await storeCompleteness(db, id, d(1), "web", { detail_rows: 50_000, detail_truncated: true });
      await storeCompleteness(db, id, d(1), "image", { detail_rows: 7 });
      await storeCompleteness(db, id, d(2), "web", { data_state: "provisional" });
      await storeCompleteness(db, id, d(3), "web", { derived: true });
      await storeCompleteness(db, id, d(3), "discover", { data_state: "provisional" });
      await storeCompleteness(db, id, d(9), "web", {}); // outside the window asked for
    });
    const r = await call("get_sync_status", { site_id: id, end: d(4), days: 7 });
    expect(r).toMatchObject({ site_id: id, start: d(-2), end: d(4), days_fetched: 4 });
    expect(r.days.map((x: { date: string; mark: string }) => [x.date, x.mark])).toEqual([
      [d(0), "complete"],
      [d(1), "truncated"],
      [d(2), "provisional"],
      [d(3), "derived"],
    ]);
    expect(r.marks).toEqual({ complete: 1, truncated: 1, provisional: 1, derived: 1 });
    expect(r.days[1].types.map((t: { search_type: string; mark: string }) => [t.search_type, t.mark])).toEqual([
      ["web", "truncated"],
      ["image", "complete"],
    ]);
    expect(r.summary).toMatchObject({ day_types: 7, days: 5, provisional: 2, derived: 1, detail_truncated: 1 });
    // The same rows as the API's /sync/status (its newest days).
    const status = await request(server.url, "GET", `/api/v1/sync/status/${id}`);
    const d0 = status.body.completeness.recent.find((x: { date: string }) => x.date === d(0));
    expect(r.days[0].types[0]).toEqual({ ...d0, mark: "complete" });
    expect(await callError("get_sync_status", { site_id: id, days: 0 })).toMatch(/days/);
  });
});
