import { and, asc, desc, eq, gte, inArray, like, max, or, sql, type AnyColumn, type SQL } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { gscPerformanceData as g } from "../db/schema.ts";

// The reads behind the MCP tools: the original assistant tools' queries (reference §4, rows 20-26)
// over gsc_performance_data. `since` bounds are inclusive (`date >= since`), as in the original.

/** Which rows of a site a tool reads: one search type (the original synced web only) or all. */
export type Scope = { siteId: number; searchType: string | "all"; since?: string };

function scoped(s: Scope, ...more: (SQL | undefined)[]) {
  return and(
    eq(g.site_id, s.siteId),
    s.searchType === "all" ? undefined : eq(g.search_type, s.searchType),
    s.since ? gte(g.date, s.since) : undefined,
    ...more,
  );
}

const clicks = sql<number>`coalesce(sum(${g.clicks}), 0)`;
const impressions = sql<number>`coalesce(sum(${g.impressions}), 0)`;
const avgPosition = sql<number>`avg(${g.position})`;

/** A page's queries with summed clicks and impressions, most impressions first (original: LIMIT 50). */
export async function findPageQueries(db: Db, s: Scope & { page: string; limit: number }) {
  return db.read
    .select({ query: g.query, clicks: clicks.as("clicks"), impressions: impressions.as("impressions"), avg_position: avgPosition.as("avg_position") })
    .from(g)
    .where(scoped(s, eq(g.page, s.page)))
    .groupBy(g.query)
    .orderBy(desc(sql`impressions`), asc(g.query))
    .limit(s.limit);
}

/** The pages a query (keyword, exact text) brought traffic to, most clicked first. */
export async function findKeywordPages(db: Db, s: Scope & { keyword: string; limit: number }) {
  return db.read
    .select({ page: g.page, avg_position: avgPosition.as("avg_position"), total_clicks: clicks.as("total_clicks"), total_impressions: impressions.as("total_impressions") })
    .from(g)
    .where(scoped(s, eq(g.query, s.keyword)))
    .groupBy(g.page)
    .orderBy(desc(sql`total_clicks`), asc(g.page))
    .limit(s.limit);
}

/** Queries matching an SQL LIKE pattern (caller supplies `%`), most impressions first. */
export async function searchKeywords(db: Db, s: Scope & { pattern: string; limit: number }) {
  return db.read
    .select({ query: g.query, total_clicks: clicks.as("total_clicks"), total_impressions: impressions.as("total_impressions"), avg_position: avgPosition.as("avg_position") })
    .from(g)
    .where(scoped(s, like(g.query, s.pattern)))
    .groupBy(g.query)
    .orderBy(desc(sql`total_impressions`), asc(g.query))
    .limit(s.limit);
}

/** The most clicked pages, with ctr as a percentage of summed clicks over summed impressions. */
export async function findBestPages(db: Db, s: Scope & { limit: number }) {
  return db.read
    .select({
      page: g.page,
      total_clicks: clicks.as("total_clicks"),
      total_impressions: impressions.as("total_impressions"),
      avg_position: avgPosition.as("avg_position"),
      ctr: sql<number>`case when sum(${g.impressions}) > 0 then cast(sum(${g.clicks}) as real) / sum(${g.impressions}) * 100 else 0 end`.as("ctr"),
    })
    .from(g)
    .where(scoped(s))
    .groupBy(g.page)
    .orderBy(desc(sql`total_clicks`), asc(g.page))
    .limit(s.limit);
}

/** Day-by-day clicks, impressions and position of the given pages (and only these queries, if given). */
export async function trackPages(db: Db, s: Scope & { pages: string[]; keywords: string[]; limit: number }) {
  return db.read
    .select({ date: g.date, page: g.page, query: g.query, clicks: clicks.as("clicks"), impressions: impressions.as("impressions"), position: avgPosition.as("position") })
    .from(g)
    .where(scoped(s, inArray(g.page, s.pages), s.keywords.length > 0 ? inArray(g.query, s.keywords) : undefined))
    .groupBy(g.date, g.page, g.query)
    .orderBy(desc(g.date), desc(sql`clicks`), asc(g.page), asc(g.query))
    .limit(s.limit);
}

/** Every query of the given pages over all dates, by page, most impressions first. */
export async function findPagesQueries(db: Db, s: Scope & { pages: string[]; limit: number }) {
  return db.read
    .select({ page: g.page, query: g.query, clicks: clicks.as("clicks"), impressions: impressions.as("impressions"), avg_position: avgPosition.as("avg_position") })
    .from(g)
    .where(scoped(s, inArray(g.page, s.pages)))
    .groupBy(g.page, g.query)
    .orderBy(asc(g.page), desc(sql`impressions`), asc(g.query))
    .limit(s.limit);
}

/** The newest day with data in scope, or null when there is none. */
export async function findNewestDay(db: Db, s: Scope): Promise<string | null> {
  const row = await db.read.select({ day: max(g.date) }).from(g).where(scoped(s)).get();
  return row?.day ?? null;
}

export type Period = { start: string; end: string };

const inPeriod = (p: Period) => sql`${g.date} between ${p.start} and ${p.end}`;
const pct = (a: SQL, b: SQL) => sql<number>`case when ${a} > 0 then (${b} - ${a}) * 100.0 / ${a} else 0 end`;

/** Clicks, impressions, position, distinct queries and pages in each period, and how they changed. */
function periodColumns(p1: Period, p2: Period) {
  const sum1 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${inPeriod(p1)} then ${c} end), 0)`;
  const sum2 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${inPeriod(p2)} then ${c} end), 0)`;
  const avg1 = sql<number | null>`avg(case when ${inPeriod(p1)} then ${g.position} end)`;
  const avg2 = sql<number | null>`avg(case when ${inPeriod(p2)} then ${g.position} end)`;
  return {
    period1_clicks: sum1(g.clicks).as("period1_clicks"),
    period2_clicks: sum2(g.clicks).as("period2_clicks"),
    clicks_change: sql<number>`${sum2(g.clicks)} - ${sum1(g.clicks)}`.as("clicks_change"),
    clicks_change_pct: pct(sum1(g.clicks), sum2(g.clicks)).as("clicks_change_pct"),
    period1_impressions: sum1(g.impressions).as("period1_impressions"),
    period2_impressions: sum2(g.impressions).as("period2_impressions"),
    impressions_change: sql<number>`${sum2(g.impressions)} - ${sum1(g.impressions)}`.as("impressions_change"),
    impressions_change_pct: pct(sum1(g.impressions), sum2(g.impressions)).as("impressions_change_pct"),
    period1_position: avg1.as("period1_position"),
    period2_position: avg2.as("period2_position"),
    position_change: sql<number | null>`${avg2} - ${avg1}`.as("position_change"),
  };
}

/**
 * The original compare_periods: totals of both periods and their changes (position_change is
 * period 2 minus period 1, so positive means worse), with distinct queries and pages per period.
 */
export async function comparePeriodTotals(db: Db, s: Scope & { period1: Period; period2: Period }) {
  const distinct = (p: Period, c: AnyColumn) => sql<number>`count(distinct case when ${inPeriod(p)} then ${c} end)`;
  const row = await db.read
    .select({
      ...periodColumns(s.period1, s.period2),
      period1_queries: distinct(s.period1, g.query).as("period1_queries"),
      period2_queries: distinct(s.period2, g.query).as("period2_queries"),
      period1_pages: distinct(s.period1, g.page).as("period1_pages"),
      period2_pages: distinct(s.period2, g.page).as("period2_pages"),
    })
    .from(g)
    .where(scoped(s, or(inPeriod(s.period1), inPeriod(s.period2))))
    .get();
  return row!;
}

/**
 * The same comparison per page or per query, ordered by clicks change: losers first (`ascending`)
 * or winners first. Pages present in only one period are included (0 clicks in the other).
 */
export async function comparePeriodsBy(
  db: Db,
  s: Scope & { period1: Period; period2: Period; by: "page" | "query"; order: "losers_first" | "gainers_first"; limit: number },
) {
  const key = s.by === "page" ? g.page : g.query;
  const cols = periodColumns(s.period1, s.period2);
  return db.read
    .select({ key: sql<string>`${key}`.as("key"), ...cols })
    .from(g)
    .where(scoped(s, or(inPeriod(s.period1), inPeriod(s.period2))))
    .groupBy(key)
    .orderBy(s.order === "losers_first" ? asc(sql`clicks_change`) : desc(sql`clicks_change`), asc(key))
    .limit(s.limit);
}
