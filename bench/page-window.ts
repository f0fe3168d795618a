import { parseArgs } from "node:util";
import { findPageKeywordPerformance, findPerformanceTrends, findRankingData, pageKeywordSince } from "../src/analytics/queries.ts";
import * as budget from "../src/db/budget.ts";
import pg from "pg";
import { openDb, openPgDb } from "../src/db/index.ts";
import { backendCpu, backendDelta } from "./cpu.ts";
import { comparePeriods, findCannibalization, findDecayingPages, findOverview, findTop } from "../src/insights/queries.ts";
import { comparePeriodsBy, comparePeriodTotals, findBestPages, findPageQueries, findPagesQueries, trackPages } from "../src/mcp/queries.ts";
import { addDays, dayOf } from "../src/sync/dates.ts";

// `bun bench/page-window.ts --db FILE | --database postgres://… --end 2026-12-04 [--site 1] [--rounds 3] [--only a,b]
// [--page URL] [--partial TERM] [--base DIR]`:
// CPU (user + system, this process and its query processes; on PostgreSQL (--database) also the database's backends,
// as "cpu A+B": this process + the backends) of the page-side reports over a 90-day window
// (page-keyword-performance, daily ranking data of every query / a --partial match, MCP best_pages / compare_periods
// by page / its period totals, insights overview / top page / compare by page / cannibalization / decay,
// performance-trends) and of the MCP tools reading one page's
// detail (show_page_queries, track_pages over 30 days; pages_queries over every day; --page, bench:analytics' page
// by default), on one read-only SQLite file or PostgreSQL database. With --base (another checkout's root, e.g. the tree before a change)
// each read runs alternately in both trees in this one process, and their answers are compared (same JSON or it
// says DIFFERENT).

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    database: { type: "string" },
    site: { type: "string", default: "1" },
    end: { type: "string" },
    rounds: { type: "string", default: "3" },
    only: { type: "string" },
    base: { type: "string" },
    page: { type: "string", default: "https://bench-analytics.example/kaka/sador/trabo-0" },
    partial: { type: "string", default: "renka" },
  },
});
if (!(values.db || values.database) || !values.end) {
  console.error("--db or --database, and --end are required");
  process.exit(1);
}
const reads = {
  findPageKeywordPerformance,
  findRankingData,
  findPerformanceTrends,
  comparePeriods,
  findCannibalization,
  findDecayingPages,
  findOverview,
  findTop,
  comparePeriodsBy,
  comparePeriodTotals,
  findBestPages,
  findPageQueries,
  trackPages,
  findPagesQueries,
};
type Reads = typeof reads;
// Each tree's reads run under its own budget module (no time limit: the unchanged reads may take minutes on a loaded machine).
const trees: [string, Reads, typeof budget][] = [["new", reads, budget]];
if (values.base) {
  const a = await import(`${values.base}/src/analytics/queries.ts`);
  const i = await import(`${values.base}/src/insights/queries.ts`);
  const m = await import(`${values.base}/src/mcp/queries.ts`);
  trees.unshift(["base", { ...a, ...i, ...m } as Reads, await import(`${values.base}/src/db/budget.ts`)]);
}
const db = values.database ? openPgDb({ url: values.database, role: "test" }) : openDb({ path: values.db!, role: "test" });
// PostgreSQL: the backends of the database's connections (this process's pool) read beside this process's CPU.
const admin = values.database ? new pg.Client({ connectionString: values.database }) : null;
await admin?.connect();
const dbName = values.database ? decodeURIComponent(new URL(values.database).pathname.slice(1)) : "";
const backends = async () => (admin ? backendCpu(admin, dbName) : new Map<number, number>());
const siteId = Number(values.site);
const end = values.end;
const page = values.page;
const start = addDays(end, -89);
const mid = addDays(end, -44);
const f = { siteId, start, end, searchType: "web" };
const p1 = { start, end: addDays(mid, -1) };
const p2 = { start: mid, end };
// The MCP tools' `days` count back from today (bench/analytics.ts: 92 days reach the seed's 90).
const since = addDays(dayOf(new Date()), -92);
const cases: [string, (r: Reads) => Promise<unknown>][] = [
  // The API's default max_results (1,000 pages), as bench:analytics asks; and every page.
  ["page_keyword_90d", (r) => r.findPageKeywordPerformance(db, { siteId, since: pageKeywordSince(90), urlContains: null, limit: 1000 })],
  [
    "page_keyword_90d_all",
    (r) => r.findPageKeywordPerformance(db, { siteId, since: pageKeywordSince(90), urlContains: null, limit: null }),
  ],
  // Ranking data, daily, every query / a partial match over the 90 days (bench:analytics' ranking_daily_90d_*).
  ...(["all", "partial"] as const).map((kind): [string, (r: Reads) => Promise<unknown>] => [
    `ranking_daily_90d_${kind}`,
    (r) =>
      r.findRankingData(db, {
        siteId,
        start,
        end,
        groupBy: "query",
        exact: null,
        partial: kind === "partial" ? [values.partial!] : null,
        daily: true,
        limit: 1000,
        searchType: "web",
      }),
  ]),
  ["mcp_best_pages", (r) => r.findBestPages(db, { siteId, searchType: "web", since, limit: 20 })],
  [
    "mcp_compare_page",
    (r) => r.comparePeriodsBy(db, { siteId, searchType: "web", period1: p1, period2: p2, by: "page", order: "losers_first", limit: 20 }),
  ],
  ["mcp_period_totals", (r) => r.comparePeriodTotals(db, { siteId, searchType: "web", period1: p1, period2: p2 })],
  ["insight_overview", (r) => r.findOverview(db, f)],
  ["insight_top_page", (r) => r.findTop(db, { ...f, by: "page", limit: 50 })],
  ["insight_compare_page", (r) => r.comparePeriods(db, { siteId, searchType: "web", by: "page", previous: p1, current: p2, limit: 20 })],
  ["insight_cannibalization", (r) => r.findCannibalization(db, { ...f, minShare: 0.1, minImpressions: 50, limit: 50 })],
  ["insight_decay", (r) => r.findDecayingPages(db, { siteId, end, searchType: "web", weeks: 13, minDrop: 0.2, minClicks: 10, limit: 50 })],
  ["trends_90", (r) => r.findPerformanceTrends(db, siteId, 90, { searchType: "web" })],
  ["trends_90_all", (r) => r.findPerformanceTrends(db, siteId, 90, { searchType: "all" })],
  // One page's detail (bench:analytics' MCP tools: 30 days, 1,000 rows; pages_queries over every day).
  ["mcp_page_queries", (r) => r.findPageQueries(db, { siteId, searchType: "web", since: addDays(end, -29), page, limit: 1000 })],
  [
    "mcp_track_pages",
    (r) => r.trackPages(db, { siteId, searchType: "web", since: addDays(end, -29), pages: [page], keywords: [], limit: 1000 }),
  ],
  ["mcp_pages_queries", (r) => r.findPagesQueries(db, { siteId, searchType: "web", pages: [page], limit: 1000 })],
  ["mcp_pages_queries_all", (r) => r.findPagesQueries(db, { siteId, searchType: "all", pages: [page], limit: 1000 })],
];
const only = values.only ? new Set(values.only.split(",")) : null;
/** CPU ms (user + system) of this process and its children (the analytics query processes), from /proc (10 ms ticks for children). */
async function cpuNow(): Promise<number> {
  const u = process.cpuUsage();
  let ticks = 0;
  for (const pid of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    const stat = await Bun.file(`/proc/${pid}/stat`)
      .text()
      .catch(() => "");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[1]) === process.pid) ticks += Number(f[11]) + Number(f[12]);
  }
  return (u.user + u.system) / 1000 + ticks * 10;
}
const load = async () => (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
console.log(`${values.db ?? dbName}: ${start}..${end}, load ${await load()}`);
for (const [name, read] of cases) {
  if (only && !only.has(name)) continue;
  const cpu: Record<string, number[]> = {};
  const server: Record<string, number[]> = {};
  const wall: Record<string, number[]> = {};
  const answers: Record<string, string> = {};
  for (let i = 0; i < Number(values.rounds); i++)
    for (const [tree, reads, b] of trees) {
      const b0 = await backends();
      const before = await cpuNow();
      const t0 = performance.now();
      const out = await b.withBudget(b.budgetOf({ timeoutMs: 3_600_000, maxRows: 10_000_000, maxBytes: 2 ** 30 }), () => read(reads));
      (wall[tree] ??= []).push(performance.now() - t0);
      (cpu[tree] ??= []).push((await cpuNow()) - before);
      (server[tree] ??= []).push(backendDelta(b0, await backends()) * 1000);
      answers[tree] = JSON.stringify(out);
    }
  const same = trees.length < 2 || answers.base === answers.new;
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
  const cpuOf = (t: string) => (admin ? cpu[t]!.map((c, i) => `${c.toFixed(0)}+${server[t]![i]!.toFixed(0)}`).join("/") : fmt(cpu[t]!));
  console.log(
    `${name.padEnd(24)} ${trees.map(([t]) => `${t} cpu ${cpuOf(t)} wall ${fmt(wall[t]!)} ms`).join("   ")}${same ? "" : "   DIFFERENT ANSWERS"}`,
  );
}
console.log(`end load ${await load()}`);
await admin?.end();
process.exit(0);
