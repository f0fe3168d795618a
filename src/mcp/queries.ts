import { and, asc, desc, eq, sql, type SQL } from "drizzle-orm";
import { amongFirst, daysOf, positionOfRows, sumOf, typeFilterCode } from "../analytics/detail.ts";
import { dayDate, dayNumber } from "../sync/grains.ts";
import { first, type Db } from "../db/index.ts";
import { searchKeywordsPg } from "../db/pg/search.ts";
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
import { searchTypeCodes, sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import {
  addSums,
  allRows,
  countPages,
  ctrOfSums,
  findAnonymizedShare,
  findPageTotals,
  findPropertyDays,
  jsonList,
  pageTotalsQuery,
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

/**
 * The detail rows `d` of some pages (`pp`: the site's pages whose text is in the JSON list $pages) in scope, as the
 * FROM and WHERE of a read (named parameters $site_id, $from, $pages). The detail is keyed (site_id, day, type,
 * page_id, ...): with the page as a plain filter a read walks every row of the site from `since` on (a page's whole
 * history at 50 M rows: 3-4.7 s). Here the site's days with rows come first, one seek each on the key (`days`,
 * recursive: the next day after the last), then each day's rows of each page and type by their key prefix: the cost
 * is the days and the pages' own rows. The `cross join`s keep that order on SQLite (the pages, then the days); on
 * PostgreSQL the detail is a LATERAL subquery (`offset 0`: not flattened), so each (page, day) is an index condition
 * (flattened, the planner read every row of each day and joined the pages by hash: 528 ms on 365 days x 2,000 rows,
 * 16 ms with the fence, 257 ms the plain filter's parallel scan).
 */
function pageDetail(db: Db, s: Scope, pages: string[]) {
  const type = typeFilterCode(s.searchType);
  const types = type === null ? searchTypeCodes.map((_, i) => i + 1) : [type];
  const key = `d.site_id = $site_id and d.day = days.day and d.type in (${types.join(", ")}) and d.page_id = pp.id`;
  // PostgreSQL: every calendar day from the first to the newest with rows, each a seek of the pages' rows (a day
  // without rows is one descent that finds none), not the recursive walk's seek per day with rows before each day's
  // read: one descent a day where the walk took two (pg20m, 400 days with rows over 450: mcp_pages_queries' statement
  // 10 -> 7 ms of backend CPU, 30 runs alternated, load 12). Fewer seeks while the rows cover more than half the span.
  const days =
    db.engine === "pg"
      ? `with days(day) as (
  select generate_series((select min(day) from gsc_query_detail where site_id = $site_id and day >= $from),
                         (select max(day) from gsc_query_detail where site_id = $site_id))),`
      : `with recursive days(day) as (
  select (select min(day) from gsc_query_detail where site_id = $site_id and day >= $from)
  union all
  select (select min(day) from gsc_query_detail where site_id = $site_id and day > days.day) from days where days.day is not null),`;
  return {
    with: `${days}
pp as (select id, page from gsc_pages where site_id = $site_id and page in (select value from ${jsonList(db.engine, "$pages", "l")}))`,
    from:
      db.engine === "pg"
        ? `pp cross join days cross join lateral (select * from gsc_query_detail d where ${key} offset 0) d join gsc_queries q on q.id = d.query_id
 where days.day is not null`
        : `pp cross join days cross join gsc_query_detail d join gsc_queries q on q.id = d.query_id
 where ${key}`,
    params: { site_id: s.siteId, from: s.since ? dayNumber(s.since) : 0, pages: JSON.stringify(pages) },
  };
}

/** SQL of Σ clicks, Σ impressions and Search Console's position (positionOfRows) of grouped detail rows `d`. */
const detailSums = (position: string) => `coalesce(sum(d.clicks), 0) as clicks, coalesce(sum(d.impressions), 0) as impressions,
       coalesce(cast(sum(d.sum_position) as double precision) / nullif(sum(d.impressions), 0) / ${sumPositionScale}, 0) as ${position}`;

/** A page's queries with summed clicks and impressions, most impressions first (original: LIMIT 50). */
export async function findPageQueries(db: Db, s: Scope & { page: string; limit: number }) {
  const x = pageDetail(db, s, [s.page]);
  const rows = await allRows<{ query: string; clicks: number; impressions: number; avg_position: number }>(
    db,
    `${x.with}
select q.query as query, ${detailSums("avg_position")}
  from ${x.from}
 group by q.query
 order by impressions desc, q.query
 limit $limit`,
    { ...x.params, limit: s.limit },
    true,
  );
  return rows.map((r) => ({
    query: r.query,
    clicks: Number(r.clicks),
    impressions: Number(r.impressions),
    avg_position: Number(r.avg_position),
  }));
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

/** Queries matching an SQL LIKE pattern (caller supplies `%`; ASCII case-insensitive, no escape character), most impressions first: the day x query rollup (SQLite: its packed day rows). */
export async function searchKeywords(db: Db, s: Scope & { pattern: string; limit: number }) {
  if (db.engine === "pg")
    return searchKeywordsPg(db, {
      siteId: s.siteId,
      since: s.since ? dayNumber(s.since) : 0,
      type: typeFilterCode(s.searchType),
      pattern: s.pattern,
      limit: s.limit,
    });
  return searchKeywordsPacked(db, s);
}

/**
 * searchKeywords on SQLite: every query's sums of the scope's window from the packed day rows (readQuerySums), the
 * pattern tested once per query of the site's dictionary, and only the queries that can be in the first `limit` get
 * their text. The rollup keyed by day (migration 0032) holds a query's rows one per day: its window's rows summed
 * per query would be sorted by query first.
 */
async function searchKeywordsPacked(db: Db, s: Scope & { pattern: string; limit: number }) {
  const w = await scopeWindow(db, s);
  if (!w) return [];
  const [sums, matching] = await Promise.all([
    readQuerySums(db, s.siteId, typeFilterCode(s.searchType), [[dayNumber(w.start), dayNumber(w.end)]]),
    matchingQueryIds(db, s.siteId, "q.query like $pattern", { pattern: s.pattern }),
  ]);
  const [c, i, sp, days] = [sums.clicks[0]!, sums.impressions[0]!, sums.sumPosition[0]!, sums.days[0]!];
  const picked = amongHighest(
    sums.n,
    (j) => i[j]!,
    s.limit,
    (j) => days[j]! > 0 && matching.has(sums.id[j]!),
  );
  checkAnswerRows(Math.min(picked.length, s.limit));
  const texts = await queryTexts(
    db,
    picked.map((j) => sums.id[j]!),
  );
  return picked
    .map((j) => ({ j, text: texts.get(sums.id[j]!)! }))
    .sort((a, b) => i[b.j]! - i[a.j]! || byText(a.text, b.text))
    .slice(0, s.limit)
    .map(({ j, text }) => ({
      query: text,
      total_clicks: c[j]!,
      total_impressions: i[j]!,
      avg_position: i[j]! > 0 ? sp[j]! / i[j]! / sumPositionScale : 0,
    }));
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
  const x = pageDetail(db, s, s.pages);
  const keywords = s.keywords.length > 0 ? ` and q.query in (select value from ${jsonList(db.engine, "$keywords", "k")})` : "";
  const rows = await allRows<{ day: number; page: string; query: string; clicks: number; impressions: number; position: number }>(
    db,
    `${x.with}
select d.day as day, pp.page as page, q.query as query, ${detailSums("position")}
  from ${x.from}${keywords}
 group by d.day, pp.page, q.query
 order by d.day desc, clicks desc, pp.page, q.query
 limit $limit`,
    { ...x.params, limit: s.limit, ...(keywords ? { keywords: JSON.stringify(s.keywords) } : {}) },
    true,
  );
  return rows.map((r) => ({
    date: dayDate(Number(r.day)),
    page: r.page,
    query: r.query,
    clicks: Number(r.clicks),
    impressions: Number(r.impressions),
    position: Number(r.position),
  }));
}

/** Every query of the given pages over all dates, by page, most impressions first. */
export async function findPagesQueries(db: Db, s: Scope & { pages: string[]; limit: number }) {
  const x = pageDetail(db, s, s.pages);
  const rows = await allRows<{ page: string; query: string; clicks: number; impressions: number; avg_position: number }>(
    db,
    `${x.with}
select pp.page as page, q.query as query, ${detailSums("avg_position")}
  from ${x.from}
 group by pp.page, q.query
 order by pp.page, impressions desc, q.query
 limit $limit`,
    { ...x.params, limit: s.limit },
    true,
  );
  return rows.map((r) => ({
    page: r.page,
    query: r.query,
    clicks: Number(r.clicks),
    impressions: Number(r.impressions),
    avg_position: Number(r.avg_position),
  }));
}

/** The newest day with data in scope, or null when there is none: the detail's key read backwards from the site's newest day. */
export async function findNewestDay(db: Db, s: Scope): Promise<string | null> {
  const d = db.t.gscQueryDetail;
  const row = first(await db.q.select({ day: d.day }).from(d).where(scoped(d, s)).orderBy(desc(d.day)).limit(1));
  return row ? dayDate(Number(row.day)) : null;
}

export type Period = { start: string; end: string };

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
  // Distinct named queries of each period (from `since` on): from each query's newest day when the period ends on or
  // after its type's newest day (countQueriesSince: the second period of the default comparisons), else the queries
  // with a day in the period, from one read of the packed day x query rows of the periods left (5 M rows, 2 x 45
  // days: instead of counting the rollup's ~1.5 M rows of each period).
  const queryCounts = async (): Promise<(number | null)[]> => {
    const type = typeFilterCode(s.searchType);
    const periods = [s.period1, s.period2].map((p): [number, number] => [
      dayNumber(s.since && s.since > p.start ? s.since : p.start),
      dayNumber(p.end),
    ]);
    const counts = await Promise.all(
      periods.map(([a, b]) => (a > b ? 0 : type === null ? null : countQueriesSince(db, s.siteId, type, dayDate(a), dayDate(b)))),
    );
    const left = [0, 1].filter((k) => counts[k] === null);
    if (left.length === 0) return counts;
    const sums = await readQuerySums(
      db,
      s.siteId,
      type,
      left.map((k) => periods[k]!),
    );
    left.forEach((k, i) => {
      const days = sums.days[i]!;
      let n = 0;
      for (let j = 0; j < sums.n; j++) if (days[j]! > 0) n++;
      counts[k] = n;
    });
    return counts;
  };
  const [d1, d2, a1, a2, [q1, q2], n1, n2] = await Promise.all([
    findPropertyDays(db, grainOf(s, s.period1)),
    findPropertyDays(db, grainOf(s, s.period2)),
    findAnonymizedShare(db, grainOf(s, s.period1)),
    findAnonymizedShare(db, grainOf(s, s.period2)),
    queryCounts(),
    countPages(db, grainOf(s, s.period1)),
    countPages(db, grainOf(s, s.period2)),
  ]);
  return {
    ...changeOf(addSums(d1), addSums(d2)),
    period1_queries: q1 ?? 0,
    period2_queries: q2 ?? 0,
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
    // Per page: Search Console's page totals of each period, both read in ONE statement and merged per page id
    // there; only the pages that can be among the first `limit` by clicks change (amongFirst, ties included) come
    // back, ordered here as before (5 M rows, 2 x 45 days: 20 rows instead of 2 x 20,000 sent and merged in JS).
    // SQLite: two statements at once (two query processes), the pages of even and of odd ids, each with its own
    // candidates (the first `limit` overall are among the two lists' union): 50 M rows, 2 x 45 days, ~430,000 rows
    // grouped, half each.
    const byParity = db.engine === "sqlite";
    const [q1, q2] = await Promise.all([
      pageTotalsQuery(db, grainOf(s, s.period1), { byParity }),
      pageTotalsQuery(db, grainOf(s, s.period2), { byParity }),
    ]);
    const a = suffixParams(q1, "_1");
    const b = suffixParams(q2, "_2");
    const dir = s.order === "losers_first" ? "asc" : "desc";
    const read = (parity: number | null) =>
      allRows<Record<string, number | string>>(
        db,
        `with a as (${a.sql}), b as (${b.sql}),
m as ${db.engine === "sqlite" ? "materialized " : ""}(
  select w.page_id as page_id, max(w.page) as page, sum(w.c1) as c1, sum(w.i1) as i1, sum(w.s1) as s1,
         sum(w.c2) as c2, sum(w.i2) as i2, sum(w.s2) as s2
    from (select a.page_id as page_id, a.page as page, a.clicks as c1, a.impressions as i1, a.sp as s1, 0 as c2, 0 as i2, 0 as s2 from a
          union all
          select b.page_id, b.page, 0, 0, 0, b.clicks, b.impressions, b.sp from b) w
   group by w.page_id)
select m.page as page, m.c1 as c1, m.i1 as i1, m.s1 as s1, m.c2 as c2, m.i2 as i2, m.s2 as s2 from m where ${amongFirst("m", "c2 - c1", dir)}`,
        { ...a.params, ...b.params, cut: Math.max(s.limit - 1, 0), ...(parity === null ? {} : { parity }) },
        true,
      );
    const rows = (await Promise.all((byParity ? [0, 1] : [null]).map(read))).flat();
    const sign = s.order === "losers_first" ? 1 : -1;
    const sums = (r: Record<string, number | string>, n: 1 | 2): Sums => ({
      clicks: Number(r[`c${n}`]),
      impressions: Number(r[`i${n}`]),
      sumPosition: Number(r[`s${n}`]),
    });
    return rows
      .map((r) => ({ key: String(r.page), ...changeOf(sums(r, 1), sums(r, 2)) }))
      .sort((a, b) => sign * (a.clicks_change - b.clicks_change) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, s.limit);
  }
  // Per query: every query's sums in both periods from the packed rollup (queryChangesPacked).
  return queryChangesPacked(db, s);
}

/**
 * comparePeriodsBy per query from the packed day × query rollup (gsc_day_query_sums): both periods' sums per query
 * in one pass over their days (each period from `since` on), only the queries that can be among the first `limit`
 * by clicks change (ties included) given their texts; the numbers as the SQL computes them (position Σ sum_position
 * / Σ impressions / 100, null without impressions; a change in % 0 without clicks or impressions before).
 */
async function queryChangesPacked(
  db: Db,
  s: Scope & { period1: Period; period2: Period; order: "losers_first" | "gainers_first"; limit: number },
) {
  const clip = (p: Period): [number, number] => [dayNumber(s.since && s.since > p.start ? s.since : p.start), dayNumber(p.end)];
  const sums = await readQuerySums(db, s.siteId, typeFilterCode(s.searchType), [clip(s.period1), clip(s.period2)]);
  const { c1, c2, i1, i2, s1, s2 } = twoPeriods(sums);
  const sign = s.order === "losers_first" ? -1 : 1;
  const value = (j: number) => sign * (c2[j]! - c1[j]!);
  const picked = amongHighest(sums.n, value, s.limit);
  checkAnswerRows(Math.min(picked.length, s.limit));
  const texts = await queryTexts(
    db,
    picked.map((j) => sums.id[j]!),
  );
  const position = (sp: number, i: number) => (i === 0 ? null : sp / i / sumPositionScale);
  const pct = (a: number, b: number) => (a > 0 ? ((b - a) * 100.0) / a : 0);
  return picked
    .map((j) => ({ j, key: texts.get(sums.id[j]!)! }))
    .sort((a, b) => value(b.j) - value(a.j) || byText(a.key, b.key))
    .slice(0, s.limit)
    .map(({ j, key }) => {
      const p1 = position(s1[j]!, i1[j]!);
      const p2 = position(s2[j]!, i2[j]!);
      return {
        key,
        period1_clicks: c1[j]!,
        period2_clicks: c2[j]!,
        clicks_change: c2[j]! - c1[j]!,
        clicks_change_pct: pct(c1[j]!, c2[j]!),
        period1_impressions: i1[j]!,
        period2_impressions: i2[j]!,
        impressions_change: i2[j]! - i1[j]!,
        impressions_change_pct: pct(i1[j]!, i2[j]!),
        period1_position: p1,
        period2_position: p2,
        position_change: p1 === null || p2 === null ? null : p2 - p1,
      };
    });
}

/** A statement's named parameters renamed with a suffix (`$from` -> `$from_1`), so two statements' texts can be one. */
function suffixParams<P extends Record<string, unknown>>(q: { sql: string; params: P }, suffix: string) {
  const sql = q.sql.replace(/\$([A-Za-z_]\w*)/g, (m, name: string) => (name in q.params ? `$${name}${suffix}` : m));
  return { sql, params: Object.fromEntries(Object.entries(q.params).map(([k, v]) => [`${k}${suffix}`, v])) as Record<string, P[keyof P]> };
}
