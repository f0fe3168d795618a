import { and, asc, desc, eq, gte, inArray, max, or, sql, type AnyColumn, type SQL } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import { likeAsciiInsensitive } from "../db/sql.ts";

// The reads behind the MCP tools: the original assistant tools' queries (reference §4, rows 20-26)
// over gsc_performance_data, written once for both engines. `since` bounds are inclusive
// (`date >= since`), as in the original. Sums and counts are mapped to numbers (PostgreSQL returns
// bigint and numeric as strings).

type G = Db["t"]["gscPerformanceData"];

/** Which rows of a site a tool reads: one search type (the original synced web only) or all. */
export type Scope = { siteId: number; searchType: string | "all"; since?: string };

function scoped(g: G, s: Scope, ...more: (SQL | undefined)[]) {
  return and(
    eq(g.site_id, s.siteId),
    s.searchType === "all" ? undefined : eq(g.search_type, s.searchType),
    s.since ? gte(g.date, s.since) : undefined,
    ...more,
  );
}

const clicks = (g: G) => sql<number>`coalesce(sum(${g.clicks}), 0)`.mapWith(Number);
const impressions = (g: G) => sql<number>`coalesce(sum(${g.impressions}), 0)`.mapWith(Number);
/** Search Console's position: impression-weighted (Σ position × impressions / Σ impressions), 0 without impressions. */
const avgPosition = (g: G) =>
  sql<number>`coalesce(cast(sum(${g.position} * ${g.impressions}) as double precision) / nullif(sum(${g.impressions}), 0), 0)`.mapWith(
    Number,
  );

/** A page's queries with summed clicks and impressions, most impressions first (original: LIMIT 50). */
export async function findPageQueries(db: Db, s: Scope & { page: string; limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      query: g.query,
      clicks: clicks(g).as("clicks"),
      impressions: impressions(g).as("impressions"),
      avg_position: avgPosition(g).as("avg_position"),
    })
    .from(g)
    .where(scoped(g, s, eq(g.page, s.page)))
    .groupBy(g.query)
    .orderBy(desc(sql`impressions`), asc(g.query))
    .limit(s.limit);
}

/** The pages a query (keyword, exact text) brought traffic to, most clicked first. */
export async function findKeywordPages(db: Db, s: Scope & { keyword: string; limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      page: g.page,
      avg_position: avgPosition(g).as("avg_position"),
      total_clicks: clicks(g).as("total_clicks"),
      total_impressions: impressions(g).as("total_impressions"),
    })
    .from(g)
    .where(scoped(g, s, eq(g.query, s.keyword)))
    .groupBy(g.page)
    .orderBy(desc(sql`total_clicks`), asc(g.page))
    .limit(s.limit);
}

/** Queries matching an SQL LIKE pattern (caller supplies `%`; ASCII case-insensitive, no escape character), most impressions first. */
export async function searchKeywords(db: Db, s: Scope & { pattern: string; limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      query: g.query,
      total_clicks: clicks(g).as("total_clicks"),
      total_impressions: impressions(g).as("total_impressions"),
      avg_position: avgPosition(g).as("avg_position"),
    })
    .from(g)
    .where(scoped(g, s, likeAsciiInsensitive(db, g.query, s.pattern)))
    .groupBy(g.query)
    .orderBy(desc(sql`total_impressions`), asc(g.query))
    .limit(s.limit);
}

/** The most clicked pages, with ctr as a percentage of summed clicks over summed impressions. */
export async function findBestPages(db: Db, s: Scope & { limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      page: g.page,
      total_clicks: clicks(g).as("total_clicks"),
      total_impressions: impressions(g).as("total_impressions"),
      avg_position: avgPosition(g).as("avg_position"),
      // double precision: SQLite's REAL; PostgreSQL's real would be 4 bytes.
      ctr: sql<number>`case when sum(${g.impressions}) > 0 then cast(sum(${g.clicks}) as double precision) / sum(${g.impressions}) * 100 else 0 end`
        .mapWith(Number)
        .as("ctr"),
    })
    .from(g)
    .where(scoped(g, s))
    .groupBy(g.page)
    .orderBy(desc(sql`total_clicks`), asc(g.page))
    .limit(s.limit);
}

/** Day-by-day clicks, impressions and position of the given pages (and only these queries, if given). */
export async function trackPages(db: Db, s: Scope & { pages: string[]; keywords: string[]; limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      date: g.date,
      page: g.page,
      query: g.query,
      clicks: clicks(g).as("clicks"),
      impressions: impressions(g).as("impressions"),
      position: avgPosition(g).as("position"),
    })
    .from(g)
    .where(scoped(g, s, inArray(g.page, s.pages), s.keywords.length > 0 ? inArray(g.query, s.keywords) : undefined))
    .groupBy(g.date, g.page, g.query)
    .orderBy(desc(g.date), desc(sql`clicks`), asc(g.page), asc(g.query))
    .limit(s.limit);
}

/** Every query of the given pages over all dates, by page, most impressions first. */
export async function findPagesQueries(db: Db, s: Scope & { pages: string[]; limit: number }) {
  const g = db.t.gscPerformanceData;
  return db.q
    .select({
      page: g.page,
      query: g.query,
      clicks: clicks(g).as("clicks"),
      impressions: impressions(g).as("impressions"),
      avg_position: avgPosition(g).as("avg_position"),
    })
    .from(g)
    .where(scoped(g, s, inArray(g.page, s.pages)))
    .groupBy(g.page, g.query)
    .orderBy(asc(g.page), desc(sql`impressions`), asc(g.query))
    .limit(s.limit);
}

/** The newest day with data in scope, or null when there is none. */
export async function findNewestDay(db: Db, s: Scope): Promise<string | null> {
  const g = db.t.gscPerformanceData;
  const row = first(
    await db.q
      .select({ day: max(g.date) })
      .from(g)
      .where(scoped(g, s)),
  );
  return row?.day ?? null;
}

export type Period = { start: string; end: string };

const inPeriod = (g: G, p: Period) => sql`${g.date} between ${p.start} and ${p.end}`;
const pct = (a: SQL, b: SQL) => sql<number>`case when ${a} > 0 then (${b} - ${a}) * 100.0 / ${a} else 0 end`.mapWith(Number);

/** Clicks, impressions, position, distinct queries and pages in each period, and how they changed. */
function periodColumns(g: G, p1: Period, p2: Period) {
  const sum1 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${inPeriod(g, p1)} then ${c} end), 0)`.mapWith(Number);
  const sum2 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${inPeriod(g, p2)} then ${c} end), 0)`.mapWith(Number);
  // Impression-weighted per period; null when the period has no impressions.
  const weighted = (p: Period) =>
    sql<
      number | null
    >`cast(sum(case when ${inPeriod(g, p)} then ${g.position} * ${g.impressions} end) as double precision) / nullif(sum(case when ${inPeriod(g, p)} then ${g.impressions} end), 0)`.mapWith(
      Number,
    );
  const avg1 = weighted(p1);
  const avg2 = weighted(p2);
  return {
    period1_clicks: sum1(g.clicks).as("period1_clicks"),
    period2_clicks: sum2(g.clicks).as("period2_clicks"),
    clicks_change: sql<number>`${sum2(g.clicks)} - ${sum1(g.clicks)}`.mapWith(Number).as("clicks_change"),
    clicks_change_pct: pct(sum1(g.clicks), sum2(g.clicks)).as("clicks_change_pct"),
    period1_impressions: sum1(g.impressions).as("period1_impressions"),
    period2_impressions: sum2(g.impressions).as("period2_impressions"),
    impressions_change: sql<number>`${sum2(g.impressions)} - ${sum1(g.impressions)}`.mapWith(Number).as("impressions_change"),
    impressions_change_pct: pct(sum1(g.impressions), sum2(g.impressions)).as("impressions_change_pct"),
    period1_position: avg1.as("period1_position"),
    period2_position: avg2.as("period2_position"),
    position_change: sql<number | null>`${avg2} - ${avg1}`.mapWith(Number).as("position_change"),
  };
}

/**
 * The original compare_periods: totals of both periods and their changes (position_change is
 * period 2 minus period 1, so positive means worse), with distinct queries and pages per period.
 */
export async function comparePeriodTotals(db: Db, s: Scope & { period1: Period; period2: Period }) {
  const g = db.t.gscPerformanceData;
  const distinct = (p: Period, c: AnyColumn) => sql<number>`count(distinct case when ${inPeriod(g, p)} then ${c} end)`.mapWith(Number);
  const row = first(
    await db.q
      .select({
        ...periodColumns(g, s.period1, s.period2),
        period1_queries: distinct(s.period1, g.query).as("period1_queries"),
        period2_queries: distinct(s.period2, g.query).as("period2_queries"),
        period1_pages: distinct(s.period1, g.page).as("period1_pages"),
        period2_pages: distinct(s.period2, g.page).as("period2_pages"),
      })
      .from(g)
      .where(scoped(g, s, or(inPeriod(g, s.period1), inPeriod(g, s.period2)))),
  );
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
  const g = db.t.gscPerformanceData;
  const key = s.by === "page" ? g.page : g.query;
  const cols = periodColumns(g, s.period1, s.period2);
  return db.q
    .select({ key: sql<string>`${key}`.as("key"), ...cols })
    .from(g)
    .where(scoped(g, s, or(inPeriod(g, s.period1), inPeriod(g, s.period2))))
    .groupBy(key)
    .orderBy(s.order === "losers_first" ? asc(sql`clicks_change`) : desc(sql`clicks_change`), asc(key))
    .limit(s.limit);
}
