import { and, asc, type Column, desc, eq, gte, inArray, lte, or, type SQL, type SQLWrapper, sql } from "drizzle-orm";
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

/** v2's ranking-data answer: one item per combination of the group_by columns, most clicked first, and totals over every matching row. */
export async function findRankingDataV2(db: Db, o: V2RankingOptions) {
  const g = db.t.gscPerformanceData;
  const match = (col: SQLWrapper & Column, list: string[] | null): SQL | undefined => {
    if (!list || list.length === 0) return undefined;
    if (o.exact) return inArray(col, list);
    return or(...list.map((t) => sql`${col} like ${containsPattern(t)} escape '\\'`));
  };
  const where = and(eq(g.site_id, o.siteId), gte(g.date, o.start), lte(g.date, o.end), match(g.query, o.queries), match(g.page, o.pages));
  const cols = Object.fromEntries(o.groupBy.map((c) => [c, sql<string>`${g[c]}`])) as Record<string, SQL<string>>;
  const sums = {
    clicks: sql<number>`coalesce(sum(${g.clicks}), 0)`.mapWith(Number),
    impressions: sql<number>`coalesce(sum(${g.impressions}), 0)`.mapWith(Number),
    weight: sql<number>`coalesce(sum(${g.position} * ${g.impressions}), 0)`.mapWith(Number),
  };
  const [rows, totals] = await Promise.all([
    db.q
      .select({ ...cols, ...sums })
      .from(g)
      .where(where)
      .groupBy(...Object.values(cols))
      .orderBy(desc(sums.clicks), ...Object.values(cols).map((c) => asc(c)))
      .limit(o.limit),
    db.q
      .select({
        ...sums,
        unique_queries: sql<number>`count(distinct ${g.query})`.mapWith(Number),
        unique_pages: sql<number>`count(distinct ${g.page})`.mapWith(Number),
      })
      .from(g)
      .where(where),
  ]);
  const t = first(totals)!;
  const tm = metricsOf(t.clicks, t.impressions, t.weight);
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
      clicks: t.clicks,
      impressions: t.impressions,
      ctr: round(tm.ctr, 4),
      position: round(tm.position, 2),
      unique_queries: t.unique_queries,
      unique_pages: t.unique_pages,
    },
  };
}
