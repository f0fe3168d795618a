import { asc, desc, eq, or, sql, type SQL, type SQLWrapper } from "drizzle-orm";
import { amongFirst, daysOf, queryPeriodSums, queryRowsTable, sumOf, typeFilterCode } from "../analytics/detail.ts";
import { dayNumber, deviceCode } from "../sync/grains.ts";
import { first, type Db } from "../db/index.ts";
import { containsPattern, likeAsciiSql, likeInsensitive } from "../db/sql.ts";
import {
  amongHighest,
  byText,
  checkAnswerRows,
  countQueriesSince,
  matchingQueryIds,
  queryTexts,
  readQuerySums,
  twoPeriods,
} from "../analytics/query-sums.ts";
import { addDays, dayRange } from "../sync/dates.ts";
import { sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import {
  addSums,
  allRows,
  assertAnswerable,
  countPages,
  findAnonymizedShare,
  findLastDataDay,
  findPagePeriodSums,
  findPageTotals,
  findPageUrls,
  findPageWeekSeries,
  findPropertyDays,
  type GrainFilters,
  type Sums,
} from "../analytics/totals.ts";

// The reads behind the insights (dashboard, API, CLI and MCP all call these, so they show the same
// numbers). Each number from its grain (docs/analytics.md): totals and trends from Search Console's
// property totals, page numbers from its page totals (src/analytics/totals.ts), query numbers from the
// day x query rollup (gsc_day_query_totals), or the compact query detail (gsc_query_detail: per day, page,
// query and device, without the queries Google anonymizes) when a device or the page is needed; filters on
// day numbers and codes, so each read seeks (site_id, day, ...). Formulas as Search Console's: CTR =
// Σclicks / Σimpressions, position impression-weighted (Σ sum_position / Σ impressions / 100), never a
// plain mean of rows.

/** Rows with query-level sums: the rollup, or the detail (which has these columns and more). */
type X = Db["t"]["gscDayQueryTotals"];

/** Which rows an insight reads: a site, a day range (both included), one search type, optionally one device and one country. */
export type Filters = {
  siteId: number;
  start: string;
  end: string;
  searchType: string;
  device?: string | null;
  /** ISO alpha-3, lower case: property and page totals only (the query detail has no country). */
  country?: string | null;
};

/** The grain filters of an insight's filters. */
export const grainOf = (f: Filters): GrainFilters => ({
  siteId: f.siteId,
  start: f.start,
  end: f.end,
  searchType: f.searchType as SearchTypeCode,
  device: f.device ?? null,
  country: f.country ?? null,
});

/** Metrics of grain sums (sum_position in hundredths). */
const metricsOfSums = (s: Sums): Metrics => metricsOf(s.clicks, s.impressions, s.sumPosition / sumPositionScale);

export type Metrics = { clicks: number; impressions: number; ctr: number | null; position: number | null };

/**
 * The rows query-level numbers of the filters read: the day x query rollup, or the query detail when a
 * device is asked (the rollup has none), and their filter (site, days, type, device).
 */
async function queryRowsOf(db: Db, f: Filters) {
  const d = db.t.gscQueryDetail;
  const x = (f.device ? d : queryRowsTable(db)) as X;
  const where = (...more: (SQL | undefined)[]) =>
    daysOf(
      x,
      f.siteId,
      { searchType: f.searchType, since: f.start, until: f.end },
      f.device ? eq(d.device, deviceCode(f.device)) : undefined,
      ...more,
    );
  return { x, where };
}

/** Every query's sums per period from the packed day × query rollup (gsc_day_query_sums): without a device filter only (it has none). */
const packedSums = (db: Db, f: Omit<Filters, "start" | "end">, periods: Period[]) =>
  readQuerySums(
    db,
    f.siteId,
    typeFilterCode(f.searchType),
    periods.map((p) => [dayNumber(p.start), dayNumber(p.end)]),
  );

/** A LIKE of `q.query` (case-insensitive, the site's dictionary) against one parameter `$name`. */
const likeSql = (db: Db, name: string) => likeAsciiSql(db.engine, "q.query", `$${name}`);

/** CTR and impression-weighted position from summed clicks, impressions and position×impressions. */
export function metricsOf(clicks: number, impressions: number, positionWeight: number): Metrics {
  return {
    clicks,
    impressions,
    ctr: impressions > 0 ? clicks / impressions : null,
    position: impressions > 0 ? positionWeight / impressions : null,
  };
}

const round = (n: number | null, digits: number) => (n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits);

/** Metrics rounded for display and answers: ctr to 4 decimals (a fraction), position to 2. */
export function rounded(m: Metrics): Metrics {
  return { clicks: m.clicks, impressions: m.impressions, ctr: round(m.ctr, 4), position: round(m.position, 2) };
}

/**
 * The property's totals over the filters (Search Console's property totals, anonymized queries
 * included), the share of clicks from anonymized queries, the named queries and the pages, and the
 * daily trend (days without data are absent: gaps; days synced before the grains are derived from the
 * query detail and counted in derived_days).
 */
export async function findOverview(db: Db, f: Filters) {
  assertAnswerable(grainOf(f), "page");
  const [daily, share, queries, pages] = await Promise.all([
    findPropertyDays(db, grainOf(f)),
    findAnonymizedShare(db, grainOf(f)),
    f.country ? null : countWindowQueries(db, f),
    countPages(db, grainOf(f)),
  ]);
  const t = addSums(daily);
  return {
    ...rounded(metricsOfSums(t)),
    queries,
    pages,
    days_with_data: daily.length,
    days: dayRange(f.start, f.end).length,
    derived_days: daily.filter((d) => d.derived).length,
    // Share of clicks from queries Google does not name (null when unknown, e.g. under a device or country filter).
    anonymized_clicks_share: round(share, 4),
    trend: daily.map((d) => ({ date: d.date, ...rounded(metricsOfSums(d)), derived: d.derived })),
  };
}

/** The named queries of the filters' window (distinct query ids): from their newest days when that is exact, else the window's rows. */
async function countWindowQueries(db: Db, f: Filters): Promise<number> {
  const type = typeFilterCode(f.searchType);
  const counted = f.device || type === null ? null : await countQueriesSince(db, f.siteId, type, f.start, f.end);
  if (counted !== null) return counted;
  const { x, where } = await queryRowsOf(db, f);
  const named = await db.q
    .select({ queries: sql<number>`count(distinct ${x.query_id})`.mapWith(Number) })
    .from(x)
    .where(where());
  return first(named)!.queries;
}

export type TopOptions = Filters & { by: "query" | "page"; limit: number; contains?: string | null; order?: "clicks" | "impressions" };

/** The top queries or pages by clicks (or impressions), with ctr and weighted position; `contains` filters the text (case-insensitive). */
export async function findTop(db: Db, o: TopOptions) {
  assertAnswerable(grainOf(o), o.by);
  if (o.by === "page") {
    const pages = await findPageTotals(db, grainOf(o), {
      urlLike: o.contains ? containsPattern(o.contains) : null,
      limit: o.limit,
      order: o.order,
    });
    return pages.map((p) => ({ page: p.page, ...rounded(metricsOfSums(p)) })) as (Metrics & { query?: string; page?: string })[];
  }
  if (!o.device) {
    // Every query's sums from the packed rollup; only the queries that can be in the first `limit` get their text.
    const [sums, matching] = await Promise.all([
      packedSums(db, o, [o]),
      o.contains ? matchingQueryIds(db, o.siteId, likeSql(db, "pattern"), { pattern: containsPattern(o.contains) }) : null,
    ]);
    const [c, i, w] = [sums.clicks[0]!, sums.impressions[0]!, sums.sumPosition[0]!];
    const [first, second] = o.order === "impressions" ? [i, c] : [c, i];
    const keep = matching ? (j: number) => matching.has(sums.id[j]!) : undefined;
    const picked = amongHighest(sums.n, (j) => first[j]!, o.limit, keep);
    checkAnswerRows(Math.min(picked.length, o.limit));
    const texts = await queryTexts(
      db,
      picked.map((j) => sums.id[j]!),
    );
    return picked
      .map((j) => ({ j, text: texts.get(sums.id[j]!)! }))
      .sort((a, b) => first[b.j]! - first[a.j]! || second[b.j]! - second[a.j]! || byText(a.text, b.text))
      .slice(0, o.limit)
      .map(({ j, text }) => ({ [o.by]: text, ...rounded(metricsOf(c[j]!, i[j]!, w[j]! / sumPositionScale)) })) as (Metrics & {
      query?: string;
      page?: string;
    })[];
  }
  const { x, where } = await queryRowsOf(db, o);
  const q = db.t.gscQueries;
  // Summed per query id, the text joined to each query's sums afterwards (not to every row of the window);
  // `contains` tested once per query of the site's dictionary.
  const matching = o.contains
    ? sql`${x.query_id} in (select ${q.id} from ${q} where ${q.site_id} = ${o.siteId} and ${likeInsensitive(db, q.query, containsPattern(o.contains))})`
    : undefined;
  const sums = db.q
    .select({
      query_id: sql<number>`${x.query_id}`.as("query_id"),
      clicks: sumOf(x.clicks).as("clicks"),
      impressions: sumOf(x.impressions).as("impressions"),
      weight: sql<number>`coalesce(sum(${x.sum_position}), 0)`.as("weight"),
    })
    .from(x)
    .where(where(matching))
    .groupBy(x.query_id)
    .as("s");
  const byImpressions = o.order === "impressions";
  const rows = await db.q
    .select({
      key: sql<string>`${q.query}`.as("key"),
      clicks: sql<number>`${sums.clicks}`.mapWith(Number),
      impressions: sql<number>`${sums.impressions}`.mapWith(Number),
      weight: sql<number>`${sums.weight}`.mapWith((v) => Number(v) / sumPositionScale),
    })
    .from(sums)
    .innerJoin(q, eq(q.id, sums.query_id))
    .orderBy(desc(byImpressions ? sums.impressions : sums.clicks), desc(byImpressions ? sums.clicks : sums.impressions), asc(q.query))
    .limit(o.limit);
  return rows.map((r) => ({ [o.by]: r.key, ...rounded(metricsOf(r.clicks, r.impressions, r.weight)) })) as (Metrics & {
    query?: string;
    page?: string;
  })[];
}

export type Period = { start: string; end: string };

/** Last `days` days ending at `end` and the `days` before them (the default comparison: 28 vs 28). */
export function defaultPeriods(end: string, days = 28): { current: Period; previous: Period } {
  const start = addDays(end, -(days - 1));
  return { current: { start, end }, previous: { start: addDays(start, -days), end: addDays(start, -1) } };
}

/** One query's sums in the previous (1) and current (2) period: clicks, impressions, Σ position × impressions / 100. */
type KeyRow = { key: string; c1: number; i1: number; w1: number; c2: number; i2: number; w2: number };

/**
 * comparePeriods per query: the winners, losers, position gains and position losses (each `limit` long, ties by
 * the query text) from ONE read of the window spanning both periods: the rows summed per query id once
 * (queryPeriodSums), and each list cut from that one set in SQL, the text joined only to the rows that can be in
 * it (amongFirst; before: to every query of the window, and each list sorted all of them by text).
 */
async function findQueryChanges(
  db: Db,
  o: Omit<Filters, "start" | "end"> & { current: Period; previous: Period; limit: number },
): Promise<[KeyRow[], KeyRow[], KeyRow[], KeyRow[]]> {
  if (!o.device) return queryChangesPacked(db, o);
  const sums = queryPeriodSums({ ...o, p1: o.previous, p2: o.current });
  const move = "(s2 * 1.0 / i2 - s1 * 1.0 / i1)";
  const list = (n: number, where: string, value: string, dir: "asc" | "desc") =>
    `select * from (select ${n} as list, (select q.query from gsc_queries q where q.id = s.query_id) as key, c1, i1, s1, c2, i2, s2
  from s where ${where} and ${amongFirst("s", value, dir, where)} order by ${value} ${dir}, key limit $limit) l${n}`;
  const sql = `with s as materialized (${sums.sql})
${list(1, "c2 - c1 > 0", "c2 - c1", "desc")}
union all ${list(2, "c2 - c1 < 0", "c2 - c1", "asc")}
union all ${list(3, `i1 > 0 and i2 > 0 and ${move} < 0`, move, "asc")}
union all ${list(4, `i1 > 0 and i2 > 0 and ${move} > 0`, move, "desc")}`;
  const rows = await allRows<{ list: number; key: string; c1: number; i1: number; s1: number; c2: number; i2: number; s2: number }>(
    db,
    sql,
    { ...sums.params, limit: o.limit, cut: Math.max(o.limit - 1, 0) },
    true,
  );
  const lists: [KeyRow[], KeyRow[], KeyRow[], KeyRow[]] = [[], [], [], []];
  for (const r of rows)
    lists[Number(r.list) - 1]!.push({
      key: r.key,
      c1: Number(r.c1),
      i1: Number(r.i1),
      w1: Number(r.s1) / sumPositionScale,
      c2: Number(r.c2),
      i2: Number(r.i2),
      w2: Number(r.s2) / sumPositionScale,
    });
  return lists;
}

/**
 * findQueryChanges from the packed rollup (no device filter): both periods' sums per query in one pass over the
 * window's packed days, each list's candidates (amongHighest: the value ties at the limit-th included) given
 * their texts, sorted by value then text, as the SQL orders them.
 */
async function queryChangesPacked(
  db: Db,
  o: Omit<Filters, "start" | "end"> & { current: Period; previous: Period; limit: number },
): Promise<[KeyRow[], KeyRow[], KeyRow[], KeyRow[]]> {
  const sums = await packedSums(db, o, [o.previous, o.current]);
  const { c1, c2, i1, i2, s1, s2 } = twoPeriods(sums);
  const gain = (j: number) => c2[j]! - c1[j]!;
  const move = (j: number) => (s2[j]! * 1.0) / i2[j]! - (s1[j]! * 1.0) / i1[j]!;
  const both = (j: number) => i1[j]! > 0 && i2[j]! > 0;
  const specs: [(j: number) => number, (j: number) => boolean][] = [
    [gain, (j) => gain(j) > 0],
    [(j) => -gain(j), (j) => gain(j) < 0],
    [(j) => -move(j), (j) => both(j) && move(j) < 0],
    [move, (j) => both(j) && move(j) > 0],
  ];
  const picked = specs.map(([value, keep]) => amongHighest(sums.n, value, o.limit, keep));
  for (const list of picked) checkAnswerRows(Math.min(list.length, o.limit));
  const texts = await queryTexts(
    db,
    [...new Set(picked.flat())].map((j) => sums.id[j]!),
  );
  return specs.map(([value], k) =>
    picked[k]!.map((j) => ({ j, key: texts.get(sums.id[j]!)! }))
      .sort((a, b) => value(b.j) - value(a.j) || byText(a.key, b.key))
      .slice(0, o.limit)
      .map(({ j, key }) => ({
        key,
        c1: c1[j]!,
        i1: i1[j]!,
        w1: s1[j]! / sumPositionScale,
        c2: c2[j]!,
        i2: i2[j]!,
        w2: s2[j]! / sumPositionScale,
      })),
  ) as [KeyRow[], KeyRow[], KeyRow[], KeyRow[]];
}

type Change = {
  key: string;
  previous: Metrics;
  current: Metrics;
  clicks_change: number;
  clicks_change_pct: number | null;
  /** current minus previous: negative means it moved up (better). */
  position_change: number | null;
};

/**
 * Two periods compared per query or page: totals of both, the winners (most clicks gained) and the
 * losers (most clicks lost), and the biggest position moves up and down among keys with impressions in both.
 */
export async function comparePeriods(
  db: Db,
  o: Omit<Filters, "start" | "end"> & { by: "query" | "page"; current: Period; previous: Period; limit: number },
) {
  const toChange = (r: { key: string; c1: number; i1: number; w1: number; c2: number; i2: number; w2: number }): Change => {
    const previous = rounded(metricsOf(r.c1, r.i1, r.w1));
    const current = rounded(metricsOf(r.c2, r.i2, r.w2));
    return {
      key: r.key,
      previous,
      current,
      clicks_change: r.c2 - r.c1,
      clicks_change_pct: r.c1 > 0 ? round(((r.c2 - r.c1) * 100) / r.c1, 1) : null,
      position_change:
        r.i1 > 0 && r.i2 > 0 ? round(metricsOf(r.c2, r.i2, r.w2).position! - metricsOf(r.c1, r.i1, r.w1).position!, 2) : null,
    };
  };
  // Totals of each period: Search Console's property totals. Per page: its page totals; per query: the query detail.
  const prev = grainOf({ ...o, start: o.previous.start, end: o.previous.end });
  const cur = grainOf({ ...o, start: o.current.start, end: o.current.end });
  assertAnswerable(prev, o.by);
  // Per page: both periods' page totals by page id in one read (no URL), each list's candidates (amongHighest: the value
  // ties at the limit-th included) given their URLs, then sorted by value and URL and cut as before (50 M rows, 2 x 45
  // days: instead of 2 x 20,000 pages with their URLs read, sent and merged).
  const perPage = async (): Promise<[KeyRow[], KeyRow[], KeyRow[], KeyRow[]]> => {
    const sums = await findPagePeriodSums(db, prev, cur);
    const rows: KeyRow[] = sums.map((p) => ({
      key: "",
      c1: p.c1,
      i1: p.i1,
      // A page absent from a period (no clicks, no impressions there) counts 0 in it.
      w1: p.c1 > 0 || p.i1 > 0 ? p.s1 / sumPositionScale : 0,
      c2: p.c2,
      i2: p.i2,
      w2: p.c2 > 0 || p.i2 > 0 ? p.s2 / sumPositionScale : 0,
    }));
    const d = (r: KeyRow) => r.c2 - r.c1;
    const m = (r: KeyRow) => r.w2 / r.i2 - r.w1 / r.i1;
    const byKey = (a: KeyRow, b: KeyRow) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    const withBoth = (r: KeyRow) => r.i1 > 0 && r.i2 > 0;
    // Each list: which rows it keeps, its order (value first), and the value amongHighest ranks (highest first).
    const specs: [(r: KeyRow) => boolean, (a: KeyRow, b: KeyRow) => number, (r: KeyRow) => number][] = [
      [(r) => d(r) > 0, (a, b) => d(b) - d(a), d],
      [(r) => d(r) < 0, (a, b) => d(a) - d(b), (r) => -d(r)],
      [(r) => withBoth(r) && m(r) < 0, (a, b) => m(a) - m(b), (r) => -m(r)],
      [(r) => withBoth(r) && m(r) > 0, (a, b) => m(b) - m(a), m],
    ];
    const picked = specs.map(([keep, , value]) =>
      amongHighest(
        rows.length,
        (j) => value(rows[j]!),
        o.limit,
        (j) => keep(rows[j]!),
      ),
    );
    const urls = await findPageUrls(
      db,
      [...new Set(picked.flat())].map((j) => sums[j]!.pageId),
    );
    for (const j of new Set(picked.flat())) rows[j]!.key = urls.get(sums[j]!.pageId)!;
    return specs.map(([, cmp], k) =>
      picked[k]!.map((j) => rows[j]!)
        .sort((a, b) => cmp(a, b) || byKey(a, b))
        .slice(0, o.limit),
    ) as [KeyRow[], KeyRow[], KeyRow[], KeyRow[]];
  };
  const [d1, d2, [winners, losers, up, down]] = await Promise.all([
    findPropertyDays(db, prev),
    findPropertyDays(db, cur),
    o.by === "page" ? perPage() : findQueryChanges(db, o),
  ]);
  const s1 = addSums(d1);
  const s2 = addSums(d2);
  // Days with data in each period: a period only partly synced makes any change look bigger than it is.
  const all = {
    key: "all",
    c1: s1.clicks,
    i1: s1.impressions,
    w1: s1.sumPosition / sumPositionScale,
    c2: s2.clicks,
    i2: s2.impressions,
    w2: s2.sumPosition / sumPositionScale,
    d1: d1.length,
    d2: d2.length,
  };
  const t = toChange(all);
  const days = (p: Period) => dayRange(p.start, p.end).length;
  const name = (c: Change) => {
    const { key: k, ...rest } = c;
    return { [o.by]: k, ...rest };
  };
  return {
    by: o.by,
    previous: { ...o.previous, ...t.previous, days: days(o.previous), days_with_data: all.d1 },
    current: { ...o.current, ...t.current, days: days(o.current), days_with_data: all.d2 },
    clicks_change: t.clicks_change,
    clicks_change_pct: t.clicks_change_pct,
    position_change: t.position_change,
    winners: winners.map(toChange).map(name),
    losers: losers.map(toChange).map(name),
    position_gains: up.map(toChange).map(name),
    position_losses: down.map(toChange).map(name),
  };
}

/**
 * Content decay: pages whose clicks fell over the last `weeks` whole weeks ending at `end` — the last
 * week at least `minDrop` (a share) below the first, and a falling least-squares trend over all weeks.
 * Pages with fewer than `minClicks` in the first week are left out (noise). Most clicks lost first.
 */
export async function findDecayingPages(
  db: Db,
  o: Omit<Filters, "start"> & { weeks: number; minDrop: number; minClicks: number; limit: number },
) {
  const start = addDays(o.end, -(o.weeks * 7 - 1));
  const weeks = Array.from({ length: o.weeks }, (_, w) => ({ start: addDays(start, w * 7), end: addDays(start, w * 7 + 6) }));
  // Each week's clicks per page from Search Console's page totals, in one read (the weekly rollup and the days
  // the weeks are shifted by), only the pages past the first-week and drop filters; the most clicks lost first.
  const pages = await findPageWeekSeries(db, grainOf({ ...o, start, end: o.end }), o.weeks, {
    minFirst: o.minClicks,
    maxLastShare: 1 - o.minDrop,
  });
  pages.sort((a, b) => b.clicks[0]! - b.clicks.at(-1)! - (a.clicks[0]! - a.clicks.at(-1)!) || (a.page < b.page ? -1 : 1));
  const out = [];
  for (const { page, clicks: series } of pages) {
    const slope = trendSlope(series);
    if (slope >= 0) continue;
    const before = series[0]!;
    const after = series.at(-1)!;
    out.push({
      page,
      weekly_clicks: series,
      first_week_clicks: before,
      last_week_clicks: after,
      clicks_lost: before - after,
      change_pct: round(((after - before) * 100) / before, 1),
      trend_per_week: round(slope, 2),
    });
    if (out.length >= o.limit) break;
  }
  return { start, end: o.end, weeks: weeks, pages: out };
}

/** The least-squares slope of a series over its index (change per step). */
export function trendSlope(ys: number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  });
  return num / den;
}

/**
 * Cannibalization: queries for which two or more pages each drew at least `minShare` of the query's
 * impressions (and the query at least `minImpressions`), most impressions first, each with its pages.
 */
export async function findCannibalization(db: Db, o: Filters & { minShare: number; minImpressions: number; limit: number }) {
  // Each query's total first, and only the queries with the largest totals summed per (page id, query id) from the
  // detail's window: the answer is the first `limit` of them by total, so when the candidates (every query whose total
  // reaches the candidates-th largest, ties included) hold `limit` cannibalized queries no other query can be among
  // them; else 8x the candidates, up to every query. The totals: without a device, every query's from the window's
  // packed rows (gsc_day_query_sums, summed in JS once for every try; 5 M rows, 90 days: instead of the rollup's
  // 2.9 M rows); with one, from the detail. 5 M rows, 90 days: 50 of the 60 largest queries are cannibalized (2 x
  // limit candidates are tried first), and only their rows of the detail's 4.5 M are grouped (a Bloom filter on the
  // query id) instead of all 603,000 page x query pairs. The texts joined only to the queries kept and their pages.
  const type = typeFilterCode(o.searchType);
  const materialized = db.engine === "sqlite" ? "materialized " : "";
  const filters = (x: string) => `${type === null ? "" : ` and ${x}.type = $type`}${o.device ? ` and ${x}.device = $device` : ""}`;
  // Without a device: the queries' totals (those reaching min_impressions), largest first, as [query id, total].
  let totals: [number, number][] | null = null;
  if (!o.device) {
    const sums = await packedSums(db, o, [o]);
    const im = sums.impressions[0]!;
    totals = [];
    for (let j = 0; j < sums.n; j++) if (im[j]! >= o.minImpressions) totals.push([sums.id[j]!, im[j]!]);
    totals.sort((a, b) => b[1] - a[1]);
  }
  const candList =
    db.engine === "pg"
      ? "select cast(e->>0 as integer) as query_id, cast(e->>1 as bigint) as total from jsonb_array_elements(cast($cand as jsonb)) e"
      : "select json_extract(value, '$[0]') as query_id, json_extract(value, '$[1]') as total from json_each($cand)";
  const candidatesSql = totals
    ? `cand as ${materialized}(${candList})`
    : `qt as ${materialized}(
  select r.query_id as query_id, sum(r.impressions) as total from gsc_query_detail r
   where r.site_id = $site_id and r.day >= $from and r.day <= $to${filters("r")}
   group by r.query_id having sum(r.impressions) >= $min_impressions),
cand as ${materialized}(
  select qt.query_id as query_id, qt.total as total from qt
   where qt.total >= coalesce((select c.total from qt c order by c.total desc limit 1 offset $skip), 0))`;
  // Each candidate's sums per page: the window's detail rows of the candidates (a Bloom filter on the query id).
  // Sums as numbers on both engines (PostgreSQL's bigint sums arrive as strings; the split below adds them in JS).
  const n = (x: string) => (db.engine === "pg" ? `(${x})::float8` : x);
  const qpSql = `select d.query_id as query_id, d.page_id as page_id, ${n("sum(d.clicks)")} as clicks, ${n("sum(d.impressions)")} as impressions,
         ${n("coalesce(sum(d.sum_position), 0)")} as weight
    from gsc_query_detail d
   where d.site_id = $site_id and d.day >= $from and d.day <= $to${filters("d")}
     and d.query_id in (select cand.query_id from cand)
   group by d.page_id, d.query_id`;
  // With the candidates known (no device): those sums read ahead by two statements at once, each over half the
  // window's days (SQLite: two query processes; PostgreSQL: two backends; scanning the window's detail, 4.5 M rows at
  // 5 M over 90 days, is most of the report's time), added here and handed to the rest of the statement as a list.
  const split = totals !== null;
  const qpList =
    db.engine === "pg"
      ? `select cast(e->>0 as integer) as query_id, cast(e->>1 as integer) as page_id, cast(e->>2 as float8) as clicks,
         cast(e->>3 as float8) as impressions, cast(e->>4 as float8) as weight from jsonb_array_elements(cast($qp as jsonb)) e`
      : `select json_extract(value, '$[0]') as query_id, json_extract(value, '$[1]') as page_id, json_extract(value, '$[2]') as clicks,
         json_extract(value, '$[3]') as impressions, json_extract(value, '$[4]') as weight from json_each($qp)`;
  const sql = `with ${candidatesSql},
qp as ${materialized}(${split ? qpList : qpSql}),
shared as (
  select cand.query_id as query_id, cand.total as total, q.query as query from cand
    join qp on qp.query_id = cand.query_id and qp.impressions >= cand.total * cast($min_share as double precision)
    join gsc_queries q on q.id = cand.query_id
   group by cand.query_id, cand.total, q.query
  having count(*) >= 2
   order by cand.total desc, q.query
   limit $limit)
select n.candidates as candidates, n.queries as queries, s.query as query, s.page as page, s.clicks as clicks,
       s.impressions as impressions, s.weight as weight, s.total as total
  from (select (select count(*) from cand) as candidates, ${totals ? "cast($queries as integer)" : "(select count(*) from qt)"} as queries) n
  left join (
    select shared.query as query, p.page as page, qp.clicks as clicks, qp.impressions as impressions, qp.weight as weight, shared.total as total
      from shared join qp on qp.query_id = shared.query_id join gsc_pages p on p.id = qp.page_id) s on true
 order by s.total desc, s.query, s.impressions desc, s.page`;
  type Row = {
    candidates: number;
    queries: number;
    query: string | null;
    page: string;
    clicks: number;
    impressions: number;
    weight: number;
    total: number;
  };
  let raw: Row[] = [];
  for (let candidates = 2 * o.limit; ; candidates *= 8) {
    // The candidates from the packed totals: every query whose total reaches the candidates-th largest.
    const cut = totals && totals.length >= candidates ? totals[candidates - 1]![1] : 0;
    const cand = totals?.slice(0, totals.findLastIndex((t) => t[1] >= cut) + 1);
    const params: Record<string, string | number> = {
      site_id: o.siteId,
      from: dayNumber(o.start),
      to: dayNumber(o.end),
      min_share: o.minShare,
      limit: o.limit,
      ...(totals ? { cand: JSON.stringify(cand), queries: totals.length } : { min_impressions: o.minImpressions, skip: candidates - 1 }),
      ...(type === null ? {} : { type }),
      ...(o.device ? { device: deviceCode(o.device) } : {}),
    };
    if (split) params.qp = JSON.stringify(await candidatePageSums(db, `with cand as (${candList}) ${qpSql}`, params));
    raw = await allRows<Row>(db, sql, params, true);
    const found = new Set(raw.map((r) => r.query)).size - (raw[0]?.query === null ? 1 : 0);
    if (found >= o.limit || Number(raw[0]?.candidates ?? 0) >= Number(raw[0]?.queries ?? 0)) break;
  }
  // The one row without a query: no query was cannibalized (the counts' row).
  const rows = raw.flatMap((r) =>
    r.query === null
      ? []
      : [
          {
            query: r.query,
            page: r.page,
            clicks: Number(r.clicks),
            impressions: Number(r.impressions),
            weight: Number(r.weight) / sumPositionScale,
            total: Number(r.total),
          },
        ],
  );
  const byQuery = new Map<string, { query: string; impressions: number; clicks: number; pages: Record<string, unknown>[] }>();
  for (const r of rows) {
    let q = byQuery.get(r.query);
    if (!q) {
      q = { query: r.query, impressions: r.total, clicks: 0, pages: [] };
      byQuery.set(r.query, q);
    }
    q.clicks += r.clicks;
    q.pages.push({
      page: r.page,
      ...rounded(metricsOf(r.clicks, r.impressions, r.weight)),
      impressions_share: round(r.total > 0 ? r.impressions / r.total : 0, 4),
    });
  }
  return [...byQuery.values()].map((q) => ({
    ...q,
    competing_pages: q.pages.filter((p) => (p.impressions_share as number) >= o.minShare).length,
  }));
}

/**
 * The rows of `sql` (query_id, page_id, clicks, impressions, weight: sums over the days $from..$to) as
 * [query_id, page_id, clicks, impressions, weight], read by two statements at once over the two halves of the days
 * and added per (query, page).
 */
async function candidatePageSums(db: Db, sql: string, params: Record<string, string | number>): Promise<number[][]> {
  type Row = { query_id: number; page_id: number; clicks: number; impressions: number; weight: number };
  const from = Number(params.from);
  const to = Number(params.to);
  const mid = from + Math.floor((to - from + 1) / 2);
  const halves =
    mid > from
      ? [
          [from, mid - 1],
          [mid, to],
        ]
      : [[from, to]];
  const parts = await Promise.all(halves.map(([a, b]) => allRows<Row>(db, sql, { ...params, from: a!, to: b! }, true)));
  const sums = new Map<string, number[]>();
  for (const rows of parts)
    for (const r of rows) {
      const key = `${r.query_id},${r.page_id}`;
      const s = sums.get(key);
      if (s) {
        s[2]! += r.clicks;
        s[3]! += r.impressions;
        s[4]! += r.weight;
      } else sums.set(key, [r.query_id, r.page_id, r.clicks, r.impressions, r.weight]);
    }
  return [...sums.values()];
}

/** Brand vs non-brand: the metrics of queries containing any brand term (case-insensitive) and of the others. */
export async function findBrandSplit(db: Db, f: Filters & { terms: string[] }) {
  if (!f.device) {
    // Every query's sums from the packed rollup, the brand queries' ids from the site's dictionary (each text tested once).
    const [sums, brandIds] = await Promise.all([
      packedSums(db, f, [f]),
      f.terms.length
        ? matchingQueryIds(
            db,
            f.siteId,
            f.terms.map((_, k) => likeSql(db, `t${k}`)).join(" or "),
            Object.fromEntries(f.terms.map((t, k) => [`t${k}`, containsPattern(t)])),
          )
        : new Set<number>(),
    ]);
    const [c, i, w] = [sums.clicks[0]!, sums.impressions[0]!, sums.sumPosition[0]!];
    const t = { bc: 0, bi: 0, bw: 0, bq: 0, nc: 0, ni: 0, nw: 0, nq: 0 };
    for (let j = 0; j < sums.n; j++) {
      if (brandIds.has(sums.id[j]!)) {
        t.bc += c[j]!;
        t.bi += i[j]!;
        t.bw += w[j]!;
        t.bq++;
      } else {
        t.nc += c[j]!;
        t.ni += i[j]!;
        t.nw += w[j]!;
        t.nq++;
      }
    }
    return brandSplitOf(f.terms, { ...t, bw: t.bw / sumPositionScale, nw: t.nw / sumPositionScale });
  }
  const { x, where } = await queryRowsOf(db, f);
  const q = db.t.gscQueries;
  const isBrand = f.terms.length ? or(...f.terms.map((t) => likeInsensitive(db, q.query, containsPattern(t))))! : sql`1 = 0`;
  // Summed per query id first, each query's text tested once against its sums (not once per row of the window).
  const sums = db.q
    .select({
      query_id: sql<number>`${x.query_id}`.as("query_id"),
      clicks: sql<number>`sum(${x.clicks})`.as("clicks"),
      impressions: sql<number>`sum(${x.impressions})`.as("impressions"),
      sp: sql<number>`sum(${x.sum_position})`.as("sp"),
    })
    .from(x)
    .where(where())
    .groupBy(x.query_id)
    .as("s");
  const part = (brand: boolean, col: SQLWrapper, scale = 1) =>
    sql<number>`coalesce(sum(case when ${brand ? isBrand : sql`not (${isBrand})`} then ${col} end), 0)`.mapWith((v) => Number(v) / scale);
  const row = first(
    await db.q
      .select({
        bc: part(true, sums.clicks),
        bi: part(true, sums.impressions),
        bw: part(true, sums.sp, sumPositionScale),
        bq: sql<number>`count(case when ${isBrand} then 1 end)`.mapWith(Number),
        nc: part(false, sums.clicks),
        ni: part(false, sums.impressions),
        nw: part(false, sums.sp, sumPositionScale),
        nq: sql<number>`count(case when not (${isBrand}) then 1 end)`.mapWith(Number),
      })
      .from(sums)
      .innerJoin(q, eq(q.id, sums.query_id)),
  )!;
  return brandSplitOf(f.terms, row);
}

/** findBrandSplit's answer from the brand (b) and other (n) queries' clicks, impressions, position weight and count. */
function brandSplitOf(
  terms: string[],
  row: { bc: number; bi: number; bw: number; bq: number; nc: number; ni: number; nw: number; nq: number },
) {
  const brand = { ...rounded(metricsOf(row.bc, row.bi, row.bw)), queries: row.bq };
  const nonBrand = { ...rounded(metricsOf(row.nc, row.ni, row.nw)), queries: row.nq };
  const clicks = row.bc + row.nc;
  return { terms, brand, non_brand: nonBrand, brand_clicks_share: clicks > 0 ? round(row.bc / clicks, 4) : null };
}

/** The newest day with data (property totals or query detail) for a site and search type (null: none), the default end of every insight. */
export async function findNewestDataDay(db: Db, siteId: number, searchType: string): Promise<string | null> {
  return findLastDataDay(db, siteId, searchType as SearchTypeCode);
}

/** A site's brand terms, sorted. */
export async function listBrandTerms(db: Db, siteId: number): Promise<string[]> {
  const b = db.t.siteBrandTerms;
  const rows = await db.q.select({ term: b.term }).from(b).where(eq(b.site_id, siteId)).orderBy(asc(b.term));
  return rows.map((r) => r.term);
}

/** Replaces a site's brand terms (lower-cased, duplicates dropped); returns them sorted. */
export async function replaceBrandTerms(db: Db, siteId: number, terms: string[]): Promise<string[]> {
  const b = db.t.siteBrandTerms;
  const unique = [...new Set(terms.map((t) => t.trim().toLowerCase()).filter(Boolean))].sort();
  await db.tx(async (tx) => {
    await tx.delete(b).where(eq(b.site_id, siteId));
    if (unique.length) await tx.insert(b).values(unique.map((term) => ({ site_id: siteId, term })));
  });
  return unique;
}
