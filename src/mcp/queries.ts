import { and, asc, desc, eq, gte, inArray, max, or, sql, type AnyColumn, type SQL } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import { likeAsciiInsensitive } from "../db/sql.ts";
import type { SearchTypeCode } from "../db/enums.ts";
import {
  addSums,
  countPages,
  ctrOfSums,
  findAnonymizedShare,
  findPageTotals,
  findPropertyDays,
  type GrainFilters,
  positionOfSums,
  type Sums,
  windowSince,
} from "../analytics/totals.ts";

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

/** The pages a scope's totals read: from `since` (or the first day with data) to today. */
async function scopeWindow(db: Db, s: Scope): Promise<{ start: string; end: string } | null> {
  return windowSince(db, s.siteId, s.since ?? null);
}

/** A scope and a window as grain filters (the MCP tools filter by search type only; "all" sums every type). */
const grainOf = (s: Scope, w: { start: string; end: string }): GrainFilters => ({
  siteId: s.siteId,
  start: w.start,
  end: w.end,
  searchType: s.searchType as SearchTypeCode | "all",
});

/**
 * The most clicked pages from Search Console's page totals (anonymized queries included), with the
 * impression-weighted position and ctr as a percentage of Σ clicks / Σ impressions.
 */
export async function findBestPages(db: Db, s: Scope & { limit: number }) {
  const w = await scopeWindow(db, s);
  if (!w) return [];
  const pages = await findPageTotals(db, grainOf(s, w), { limit: s.limit });
  return pages.map((p) => ({
    page: p.page,
    total_clicks: p.clicks,
    total_impressions: p.impressions,
    avg_position: positionOfSums(p),
    ctr: ctrOfSums(p) * 100,
  }));
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

/** The comparison fields of one key (or the whole property) from its sums in both periods. */
function changeOf(a: Sums, b: Sums) {
  const pct = (x: number, y: number) => (x > 0 ? ((y - x) * 100) / x : 0);
  const p1 = a.impressions > 0 ? positionOfSums(a) : null;
  const p2 = b.impressions > 0 ? positionOfSums(b) : null;
  return {
    period1_clicks: a.clicks,
    period2_clicks: b.clicks,
    clicks_change: b.clicks - a.clicks,
    clicks_change_pct: pct(a.clicks, b.clicks),
    period1_impressions: a.impressions,
    period2_impressions: b.impressions,
    impressions_change: b.impressions - a.impressions,
    impressions_change_pct: pct(a.impressions, b.impressions),
    period1_position: p1,
    period2_position: p2,
    position_change: p1 === null || p2 === null ? null : p2 - p1,
  };
}

/**
 * The original compare_periods: totals of both periods from Search Console's property totals and their
 * changes (position_change is period 2 minus period 1, so positive means worse), the share of clicks
 * from anonymized queries in each, the distinct named queries (query detail) and pages (page totals).
 */
export async function comparePeriodTotals(db: Db, s: Scope & { period1: Period; period2: Period }) {
  const g = db.t.gscPerformanceData;
  const distinct = (p: Period) =>
    db.q
      .select({ n: sql<number>`count(distinct ${g.query})`.mapWith(Number) })
      .from(g)
      .where(scoped(g, s, inPeriod(g, p)));
  const [d1, d2, a1, a2, q1, q2, n1, n2] = await Promise.all([
    findPropertyDays(db, grainOf(s, s.period1)),
    findPropertyDays(db, grainOf(s, s.period2)),
    findAnonymizedShare(db, grainOf(s, s.period1)),
    findAnonymizedShare(db, grainOf(s, s.period2)),
    distinct(s.period1),
    distinct(s.period2),
    countPages(db, grainOf(s, s.period1)),
    countPages(db, grainOf(s, s.period2)),
  ]);
  return {
    ...changeOf(addSums(d1), addSums(d2)),
    period1_queries: first(q1)?.n ?? 0,
    period2_queries: first(q2)?.n ?? 0,
    period1_pages: n1,
    period2_pages: n2,
    period1_anonymized_clicks_share: a1,
    period2_anonymized_clicks_share: a2,
    period1_derived_days: d1.filter((d) => d.derived).length,
    period2_derived_days: d2.filter((d) => d.derived).length,
  };
}

/**
 * The same comparison per page or per query, ordered by clicks change: losers first (`ascending`)
 * or winners first. Pages present in only one period are included (0 clicks in the other).
 */
export async function comparePeriodsBy(
  db: Db,
  s: Scope & { period1: Period; period2: Period; by: "page" | "query"; order: "losers_first" | "gainers_first"; limit: number },
) {
  if (s.by === "page") {
    // Per page: Search Console's page totals of each period.
    const [p1, p2] = await Promise.all([findPageTotals(db, grainOf(s, s.period1)), findPageTotals(db, grainOf(s, s.period2))]);
    const zero = { clicks: 0, impressions: 0, sumPosition: 0 };
    const sums = new Map<string, [Sums, Sums]>();
    for (const p of p1) sums.set(p.page, [p, zero]);
    for (const p of p2) sums.set(p.page, [sums.get(p.page)?.[0] ?? zero, p]);
    const sign = s.order === "losers_first" ? 1 : -1;
    return [...sums.entries()]
      .map(([key, [a, b]]) => ({ key, ...changeOf(a, b) }))
      .sort((a, b) => sign * (a.clicks_change - b.clicks_change) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, s.limit);
  }
  const g = db.t.gscPerformanceData;
  const key = g.query;
  const cols = periodColumns(g, s.period1, s.period2);
  return db.q
    .select({ key: sql<string>`${key}`.as("key"), ...cols })
    .from(g)
    .where(scoped(g, s, or(inPeriod(g, s.period1), inPeriod(g, s.period2))))
    .groupBy(key)
    .orderBy(s.order === "losers_first" ? asc(sql`clicks_change`) : desc(sql`clicks_change`), asc(key))
    .limit(s.limit);
}
