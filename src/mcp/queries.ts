import { and, asc, desc, eq, inArray, or, sql, type AnyColumn, type SQL } from "drizzle-orm";
import { dayIn, daysOf, positionOfRows, positionOrNull, queryRowsTable, readsInQueryOrder, sumOf } from "../analytics/detail.ts";
import { dayDate, dayNumber } from "../sync/grains.ts";
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

// The reads behind the MCP tools: the original assistant tools' queries (reference §4, rows 20-26), written
// once for both engines with Drizzle's builder over the compact query detail (gsc_query_detail, with the
// gsc_pages / gsc_queries dictionaries) and its day x query rollup (gsc_day_query_totals): day numbers and
// type codes, so each read seeks (site_id, day, ...). `since` bounds are inclusive (`date >= since`), as in
// the original. Sums and counts are mapped to numbers (PostgreSQL returns bigint and numeric as strings).

/** Which rows of a site a tool reads: one search type (the original synced web only) or all. */
export type Scope = { siteId: number; searchType: string | "all"; since?: string };

/** A scope's filter on the detail or the rollup. */
const scoped = (x: Parameters<typeof daysOf>[0], s: Scope, ...more: (SQL | undefined)[]) =>
  daysOf(x, s.siteId, { searchType: s.searchType, since: s.since ?? null }, ...more);

/** A scope's filter on the rollup over one period, walked in query order when the period is most of the history (readsInQueryOrder). */
async function scopedPeriod(db: Db, r: R, s: Scope, p: Period, queryOrder: boolean | null, ...more: (SQL | undefined)[]) {
  const since = s.since && s.since > p.start ? s.since : p.start;
  queryOrder ??= await readsInQueryOrder(db, s.siteId, since, p.end);
  return daysOf(r, s.siteId, { searchType: s.searchType, since, until: p.end, queryOrder }, ...more);
}

/** A page's queries with summed clicks and impressions, most impressions first (original: LIMIT 50). */
export async function findPageQueries(db: Db, s: Scope & { page: string; limit: number }) {
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = db.t;
  return db.q
    .select({
      query: q.query,
      clicks: sumOf(d.clicks).as("clicks"),
      impressions: sumOf(d.impressions).as("impressions"),
      avg_position: positionOfRows(d.sum_position, d.impressions).as("avg_position"),
    })
    .from(d)
    .innerJoin(p, and(eq(p.id, d.page_id), eq(p.site_id, s.siteId), eq(p.page, s.page)))
    .innerJoin(q, eq(q.id, d.query_id))
    .where(scoped(d, s))
    .groupBy(q.query)
    .orderBy(desc(sql`impressions`), asc(q.query))
    .limit(s.limit);
}

/** The pages a query (keyword, exact text) brought traffic to, most clicked first. */
export async function findKeywordPages(db: Db, s: Scope & { keyword: string; limit: number }) {
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = db.t;
  return db.q
    .select({
      page: p.page,
      avg_position: positionOfRows(d.sum_position, d.impressions).as("avg_position"),
      total_clicks: sumOf(d.clicks).as("total_clicks"),
      total_impressions: sumOf(d.impressions).as("total_impressions"),
    })
    .from(d)
    .innerJoin(q, and(eq(q.id, d.query_id), eq(q.site_id, s.siteId), eq(q.query, s.keyword)))
    .innerJoin(p, eq(p.id, d.page_id))
    .where(scoped(d, s))
    .groupBy(p.page)
    .orderBy(desc(sql`total_clicks`), asc(p.page))
    .limit(s.limit);
}

/** Queries matching an SQL LIKE pattern (caller supplies `%`; ASCII case-insensitive, no escape character), most impressions first: the day x query rollup. */
export async function searchKeywords(db: Db, s: Scope & { pattern: string; limit: number }) {
  const { gscDayQueryTotals: r, gscQueries: q } = db.t;
  // The pattern tested once per query of the site's dictionary, not once per rollup row; the rows summed per
  // query id, the text joined to each query's sums afterwards.
  const matching = sql`${r.query_id} in (select ${q.id} from ${q} where ${q.site_id} = ${s.siteId} and ${likeAsciiInsensitive(db, q.query, s.pattern)})`;
  const sums = db.q
    .select({
      query_id: sql<number>`${r.query_id}`.as("query_id"),
      total_clicks: sumOf(r.clicks).as("total_clicks"),
      total_impressions: sumOf(r.impressions).as("total_impressions"),
      avg_position: positionOfRows(r.sum_position, r.impressions).as("avg_position"),
    })
    .from(r)
    .where(scoped(r, s, matching))
    .groupBy(r.query_id)
    .as("s");
  return db.q
    .select({
      query: q.query,
      total_clicks: sql<number>`${sums.total_clicks}`.mapWith(Number),
      total_impressions: sql<number>`${sums.total_impressions}`.mapWith(Number),
      avg_position: sql<number>`${sums.avg_position}`.mapWith(Number),
    })
    .from(sums)
    .innerJoin(q, eq(q.id, sums.query_id))
    .orderBy(desc(sums.total_impressions), asc(q.query))
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
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = db.t;
  const rows = await db.q
    .select({
      day: d.day,
      page: p.page,
      query: q.query,
      clicks: sumOf(d.clicks).as("clicks"),
      impressions: sumOf(d.impressions).as("impressions"),
      position: positionOfRows(d.sum_position, d.impressions).as("position"),
    })
    .from(d)
    .innerJoin(p, and(eq(p.id, d.page_id), eq(p.site_id, s.siteId), inArray(p.page, s.pages)))
    .innerJoin(q, and(eq(q.id, d.query_id), s.keywords.length > 0 ? inArray(q.query, s.keywords) : undefined))
    .where(scoped(d, s))
    .groupBy(d.day, p.page, q.query)
    .orderBy(desc(d.day), desc(sql`clicks`), asc(p.page), asc(q.query))
    .limit(s.limit);
  return rows.map(({ day, ...r }) => ({ date: dayDate(Number(day)), ...r }));
}

/** Every query of the given pages over all dates, by page, most impressions first. */
export async function findPagesQueries(db: Db, s: Scope & { pages: string[]; limit: number }) {
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = db.t;
  return db.q
    .select({
      page: p.page,
      query: q.query,
      clicks: sumOf(d.clicks).as("clicks"),
      impressions: sumOf(d.impressions).as("impressions"),
      avg_position: positionOfRows(d.sum_position, d.impressions).as("avg_position"),
    })
    .from(d)
    .innerJoin(p, and(eq(p.id, d.page_id), eq(p.site_id, s.siteId), inArray(p.page, s.pages)))
    .innerJoin(q, eq(q.id, d.query_id))
    .where(scoped(d, s))
    .groupBy(p.page, q.query)
    .orderBy(asc(p.page), desc(sql`impressions`), asc(q.query))
    .limit(s.limit);
}

/** The newest day with data in scope, or null when there is none: the detail's key read backwards from the site's newest day. */
export async function findNewestDay(db: Db, s: Scope): Promise<string | null> {
  const d = db.t.gscQueryDetail;
  const row = first(await db.q.select({ day: d.day }).from(d).where(scoped(d, s)).orderBy(desc(d.day)).limit(1));
  return row ? dayDate(Number(row.day)) : null;
}

export type Period = { start: string; end: string };

type R = Db["t"]["gscDayQueryTotals"];
const pct = (a: SQL, b: SQL) => sql<number>`case when ${a} > 0 then (${b} - ${a}) * 100.0 / ${a} else 0 end`.mapWith(Number);

/** Clicks, impressions and position of each query (rollup rows `r`) in each period, and how they changed. */
function periodColumns(r: R, p1: Period, p2: Period) {
  const sum1 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${dayIn(r, p1)} then ${c} end), 0)`.mapWith(Number);
  const sum2 = (c: AnyColumn) => sql<number>`coalesce(sum(case when ${dayIn(r, p2)} then ${c} end), 0)`.mapWith(Number);
  // Impression-weighted per period (Σ sum_position / Σ impressions / 100); null when the period has no impressions.
  const weighted = (p: Period) =>
    positionOrNull(sql`case when ${dayIn(r, p)} then ${r.sum_position} end`, sql`case when ${dayIn(r, p)} then ${r.impressions} end`);
  const avg1 = weighted(p1);
  const avg2 = weighted(p2);
  return {
    period1_clicks: sum1(r.clicks).as("period1_clicks"),
    period2_clicks: sum2(r.clicks).as("period2_clicks"),
    clicks_change: sql<number>`${sum2(r.clicks)} - ${sum1(r.clicks)}`.mapWith(Number).as("clicks_change"),
    clicks_change_pct: pct(sum1(r.clicks), sum2(r.clicks)).as("clicks_change_pct"),
    period1_impressions: sum1(r.impressions).as("period1_impressions"),
    period2_impressions: sum2(r.impressions).as("period2_impressions"),
    impressions_change: sql<number>`${sum2(r.impressions)} - ${sum1(r.impressions)}`.mapWith(Number).as("impressions_change"),
    impressions_change_pct: pct(sum1(r.impressions), sum2(r.impressions)).as("impressions_change_pct"),
    period1_position: avg1.as("period1_position"),
    period2_position: avg2.as("period2_position"),
    position_change: sql<number | null>`${avg2} - ${avg1}`.mapWith(Number).as("position_change"),
  };
}

/** The days from the earlier period's start to the later one's end: one index range covering both periods. */
const spanOf = (p1: Period, p2: Period): Period => ({
  start: p1.start < p2.start ? p1.start : p2.start,
  end: p1.end > p2.end ? p1.end : p2.end,
});

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
  // Distinct named queries of a period: the rollup walked in query order, or the detail's (site_id, day) range.
  const distinct = async (p: Period) => {
    const since = s.since && s.since > p.start ? s.since : p.start;
    const queryOrder = await readsInQueryOrder(db, s.siteId, since, p.end);
    const r = queryRowsTable(db, queryOrder);
    return db.q
      .select({ n: sql<number>`count(distinct ${r.query_id})`.mapWith(Number) })
      .from(r)
      .where(await scopedPeriod(db, r, s, p, queryOrder));
  };
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
  // Per query: the day x query rollup over one day range spanning both periods.
  const q = db.t.gscQueries;
  const span = spanOf(s.period1, s.period2);
  const queryOrder = await readsInQueryOrder(db, s.siteId, span.start, span.end);
  const r = queryRowsTable(db, queryOrder);
  const cols = periodColumns(r, s.period1, s.period2);
  // Summed per query id, the text joined to each query's sums afterwards (not to every row of both periods).
  const sums = db.q
    .select({ query_id: sql<number>`${r.query_id}`.as("query_id"), ...cols })
    .from(r)
    .where(await scopedPeriod(db, r, s, span, queryOrder, or(dayIn(r, s.period1, queryOrder), dayIn(r, s.period2, queryOrder))))
    .groupBy(r.query_id)
    .as("s");
  return db.q
    .select({
      key: sql<string>`${q.query}`.as("key"),
      period1_clicks: sql<number>`${sums.period1_clicks}`.mapWith(Number),
      period2_clicks: sql<number>`${sums.period2_clicks}`.mapWith(Number),
      clicks_change: sql<number>`${sums.clicks_change}`.mapWith(Number),
      clicks_change_pct: sql<number | null>`${sums.clicks_change_pct}`.mapWith(Number),
      period1_impressions: sql<number>`${sums.period1_impressions}`.mapWith(Number),
      period2_impressions: sql<number>`${sums.period2_impressions}`.mapWith(Number),
      impressions_change: sql<number>`${sums.impressions_change}`.mapWith(Number),
      impressions_change_pct: sql<number | null>`${sums.impressions_change_pct}`.mapWith(Number),
      period1_position: sql<number | null>`${sums.period1_position}`.mapWith(Number),
      period2_position: sql<number | null>`${sums.period2_position}`.mapWith(Number),
      position_change: sql<number | null>`${sums.position_change}`.mapWith(Number),
    })
    .from(sums)
    .innerJoin(q, eq(q.id, sums.query_id))
    .orderBy(s.order === "losers_first" ? asc(sums.clicks_change) : desc(sums.clicks_change), asc(q.query))
    .limit(s.limit);
}
