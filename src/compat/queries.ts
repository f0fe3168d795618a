import { asc, type Column, desc, eq, inArray, or, type SQL, type SQLWrapper, sql } from "drizzle-orm";
import { dateOfDay, daysOf, queryRowsTable } from "../analytics/detail.ts";
import { addSums, countPages, findPageTotals, findPropertyDays, type Sums } from "../analytics/totals.ts";
import { sumPositionScale } from "../db/enums.ts";
import { first, type Db } from "../db/index.ts";
import { containsPattern } from "../db/sql.ts";
import { metricsOf } from "../insights/queries.ts";

// The v2-era ranking-data read (reference §4 N5): rows summed over the whole range per the requested
// columns, with Search Console's formulas (CTR = Σclicks/Σimpressions, impression-weighted position)
// where v2 averaged rows.

/** Columns a v2 `group_by` list may name (the stored dimensions). */
export const v2GroupColumns = ["query", "page", "date", "device", "search_type"] as const;
export type V2GroupColumn = (typeof v2GroupColumns)[number];

export type V2RankingOptions = {
  siteId: number;
  start: string;
  end: string;
  groupBy: V2GroupColumn[];
  queries: string[] | null;
  pages: string[] | null;
  exact: boolean;
  limit: number;
};

const round = (n: number | null, d: number) => (n === null ? 0 : Math.round(n * 10 ** d) / 10 ** d);

/** Summed clicks, impressions and Σ position × impressions (Σ sum_position / 100) of some rows. */
type V2Sums = { clicks: number; impressions: number; weight: number };

/**
 * v2's ranking-data answer: one item per combination of the group_by columns, most clicked first, and totals
 * over every matching row. Each number from the grain that answers it exactly (docs/design/grains.md):
 * - rows grouped by page alone, with no query filter (the by-page mode): Search Console's page totals;
 * - other rows: the day x query rollup when neither page nor device is named (group_by or filter), else the
 *   query detail (gsc_query_detail), each seeked on (site_id, day);
 * - aggregations: with no filter the property totals (every search type), with only exact pages their page
 *   totals, with queries the rollup or the detail; unique_pages from the page totals unless queries filter,
 *   unique_queries from the rollup unless pages filter.
 */
export async function findRankingDataV2(db: Db, o: V2RankingOptions) {
  const hasQueries = !!o.queries?.length;
  const hasPages = !!o.pages?.length;
  const grain = { siteId: o.siteId, start: o.start, end: o.end, searchType: "all" as const };
  // Page totals can take a list of exact URLs, not v2's substring terms.
  const pageTotalsAnswer = !hasQueries && (!hasPages || o.exact);
  const pageList = hasPages ? o.pages : null;
  const byPage = pageTotalsAnswer && o.groupBy.length === 1 && o.groupBy[0] === "page";
  const [rows, totals, uniqueQueries, uniquePages] = await Promise.all([
    byPage
      ? findPageTotals(db, grain, { pages: pageList, limit: o.limit, order: "clicks_page" }).then((pages) =>
          pages.map((p) => ({ page: p.page, clicks: p.clicks, impressions: p.impressions, weight: p.sumPosition / sumPositionScale })),
        )
      : v2Rows(db, o, o.groupBy, o.limit),
    !hasQueries && !hasPages
      ? findPropertyDays(db, grain).then((days) => sumsOf(addSums(days)))
      : pageTotalsAnswer
        ? findPageTotals(db, grain, { pages: pageList }).then((pages) => sumsOf(addSums(pages)))
        : v2Rows(db, o, [], 1).then((r) => r[0] ?? { clicks: 0, impressions: 0, weight: 0 }),
    v2Count(db, o, "query"),
    pageTotalsAnswer ? countPages(db, grain, { pages: pageList }) : v2Count(db, o, "page"),
  ]);
  const tm = metricsOf(totals.clicks, totals.impressions, totals.weight);
  const data = rows.map((r) => {
    const m = metricsOf(r.clicks, r.impressions, r.weight);
    const keys = Object.fromEntries(o.groupBy.map((c) => [c, (r as Record<string, unknown>)[c]]));
    return {
      query: null,
      page: null,
      ...keys,
      clicks: r.clicks,
      impressions: r.impressions,
      ctr: round(m.ctr, 4),
      position: round(m.position, 2),
    };
  });
  return {
    data,
    total: data.length,
    aggregations: {
      clicks: totals.clicks,
      impressions: totals.impressions,
      ctr: round(tm.ctr, 4),
      position: round(tm.position, 2),
      unique_queries: uniqueQueries,
      unique_pages: uniquePages,
    },
  };
}

/** Grain sums as v2's (weight = Σ position × impressions). */
const sumsOf = (s: Sums): V2Sums => ({ clicks: s.clicks, impressions: s.impressions, weight: s.sumPosition / sumPositionScale });

/** The query-level rows v2 reads: the day x query rollup when no page or device is named, else the detail (aliases as tables). */
function v2Source(db: Db, o: V2RankingOptions, groupBy: V2GroupColumn[]) {
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = db.t;
  const detail = !!o.pages?.length || groupBy.includes("page") || groupBy.includes("device");
  const r = queryRowsTable(db);
  const x = (detail ? d : r) as typeof r;
  const match = (col: SQLWrapper & Column, list: string[] | null): SQL | undefined => {
    if (!list || list.length === 0) return undefined;
    if (o.exact) return inArray(col, list);
    return or(...list.map((t) => sql`${col} like ${containsPattern(t)} escape '\\'`));
  };
  const where = daysOf(
    x,
    o.siteId,
    { since: o.start, until: o.end },
    match(q.query, o.queries),
    detail ? match(p.page, o.pages) : undefined,
  );
  const cols: Record<V2GroupColumn, SQL> = {
    query: sql`${q.query}`,
    page: sql`${p.page}`,
    date: dateOfDay(db, x.day),
    device: sql`case ${d.device} when 1 then 'DESKTOP' when 2 then 'MOBILE' when 3 then 'TABLET' else '' end`,
    search_type: sql`case ${x.type} when 1 then 'web' when 2 then 'image' when 3 then 'video' when 4 then 'news' when 5 then 'discover' when 6 then 'googleNews' end`,
  };
  return { x, q, p, detail, where, cols };
}

/** v2 rows grouped by some columns (none: one row of totals), most clicked first. */
async function v2Rows(db: Db, o: V2RankingOptions, groupBy: V2GroupColumn[], limit: number): Promise<(V2Sums & Record<string, unknown>)[]> {
  const { x, q, p, detail, where, cols } = v2Source(db, o, groupBy);
  const keys = Object.fromEntries(groupBy.map((c) => [c, sql<string>`${cols[c]}`])) as Record<string, SQL<string>>;
  const sums = {
    clicks: sql<number>`coalesce(sum(${x.clicks}), 0)`.mapWith(Number),
    impressions: sql<number>`coalesce(sum(${x.impressions}), 0)`.mapWith(Number),
    weight: sql<number>`coalesce(sum(${x.sum_position}), 0)`.mapWith((v) => Number(v) / sumPositionScale),
  };
  let query = db.q
    .select({ ...keys, ...sums })
    .from(x)
    .innerJoin(q, eq(q.id, x.query_id))
    .$dynamic();
  if (detail) query = query.innerJoin(p, eq(p.id, db.t.gscQueryDetail.page_id));
  query = query.where(where);
  if (groupBy.length) query = query.groupBy(...Object.values(keys));
  return query.orderBy(desc(sums.clicks), ...Object.values(keys).map((c) => asc(c))).limit(limit);
}

/** Distinct queries or pages among the matching rows (rollup or detail). */
async function v2Count(db: Db, o: V2RankingOptions, what: "query" | "page"): Promise<number> {
  const { x, q, p, detail, where } = v2Source(db, o, what === "page" ? ["page"] : []);
  const id = what === "page" ? db.t.gscQueryDetail.page_id : x.query_id;
  let query = db.q
    .select({ n: sql<number>`count(distinct ${id})`.mapWith(Number) })
    .from(x)
    .innerJoin(q, eq(q.id, x.query_id))
    .$dynamic();
  if (detail) query = query.innerJoin(p, eq(p.id, db.t.gscQueryDetail.page_id));
  return first(await query.where(where))?.n ?? 0;
}
