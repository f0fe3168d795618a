import { and, type Column, eq, gte, lte, type SQL, type SQLWrapper, sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { searchTypeCodes, sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import { dayNumber, deviceCode } from "../sync/grains.ts";

// Drizzle fragments for reads of the compact query detail (gsc_query_detail) and its day x query rollup
// (gsc_day_query_totals), shared by the MCP tools, insights and the compatibility routes: filters on the
// integer day and type codes, computed once from the request (an index seek on (site_id, day, ...)), and
// Search Console's formulas over grouped rows (docs/design/grains.md).

/** A table keyed by (site_id, day, type, ...): the detail or the rollup. */
type DayTable = { site_id: Column; day: Column; type: Column };

/** A search type name as its stored code; "all" (or null) is no filter, an unknown name is 0, which no row has. */
export function typeFilterCode(searchType: string | null | undefined): number | null {
  if (!searchType || searchType === "all") return null;
  return searchTypeCodes.indexOf(searchType as SearchTypeCode) + 1;
}

/** Rows of a site from day `since` to day `until` (both 'YYYY-MM-DD', included, either optional) of one search type or all. */
export function daysOf(
  x: DayTable,
  siteId: number,
  o: { searchType?: string | null; since?: string | null; until?: string | null; queryOrder?: boolean },
  ...more: (SQL | undefined)[]
) {
  const type = typeFilterCode(o.searchType);
  // In query order (readsInQueryOrder): the day bounds as plain filters (`+day` uses no index), so SQLite walks
  // the rollup's (site_id, query_id, day, type) key and groups per query without a sort.
  return and(
    eq(x.site_id, siteId),
    o.since ? (o.queryOrder ? sql`+${x.day} >= ${dayNumber(o.since)}` : gte(x.day, dayNumber(o.since))) : undefined,
    o.until ? (o.queryOrder ? sql`+${x.day} <= ${dayNumber(o.until)}` : lte(x.day, dayNumber(o.until))) : undefined,
    type === null ? undefined : eq(x.type, type),
    ...more,
  );
}

/** Share of a site's history a window must cover for a read of every query to walk the rollup in query order. */
const QUERY_ORDER_SHARE = 0.1;

/**
 * Whether a read of every query of a site over days `since`..`until` should walk the day x query rollup in query
 * order (SQLite only): the rollup is keyed (site_id, query_id, day, type) (migration 0028), so it is the whole
 * site's rows with the day as a filter, summed per query as they come. Otherwise (a short window) SQLite reads the
 * window's days of the detail (queryRowsTable), which gives the same sums per query. Measured at 5 M rows (100 days,
 * SQL CPU): the walk 0.25-0.7 s whatever the window; the detail ~40 ms a day (7 days ~0.22 s, 30 days 1.2-1.4 s):
 * the walk over more than 10% of the history. PostgreSQL keeps an index on (site_id, day, ...) and sums with a hash: never.
 */
export async function readsInQueryOrder(db: Db, siteId: number, since: string | null, until: string | null): Promise<boolean> {
  if (db.engine === "pg") return false;
  const row = db.raw.reader
    .query<{ lo: number | null; hi: number | null }, [number]>(
      // The first and last day from the detail's (site_id, day, ...) key: the rollup's key starts with the query.
      `select (select day from gsc_query_detail where site_id = ?1 order by day limit 1) as lo,
              (select day from gsc_query_detail where site_id = ?1 order by day desc limit 1) as hi`,
    )
    .get(siteId);
  if (row?.lo == null || row.hi == null) return false;
  const from = Math.max(row.lo, since ? dayNumber(since) : row.lo);
  const to = Math.min(row.hi, until ? dayNumber(until) : row.hi);
  return to >= from && to - from + 1 > QUERY_ORDER_SHARE * (row.hi - row.lo + 1);
}

/**
 * The rows a read of every query over a window sums (readsInQueryOrder's answer `queryOrder`): the day x query
 * rollup, or on SQLite when it would not walk it in query order the detail (same columns, same sums per query id).
 */
export function queryRowsTable(db: Db, queryOrder: boolean): Db["t"]["gscDayQueryTotals"] {
  return (db.engine === "sqlite" && !queryOrder ? db.t.gscQueryDetail : db.t.gscDayQueryTotals) as Db["t"]["gscDayQueryTotals"];
}

/** Which rows a read of every query's sums in two periods takes: a site, one search type or all, optionally one device and a first day. */
export type PeriodSumsOptions = {
  siteId: number;
  searchType: string | null;
  device?: string | null;
  since?: string | null;
  p1: { start: string; end: string };
  p2: { start: string; end: string };
};

/**
 * Every query's sums in two periods, as the SQL `select query_id, c1, i1, s1, c2, i2, s2 ... group by query_id`
 * (clicks, impressions and Σ sum_position of period 1 and 2, 0 without rows) and its named parameters: ONE read
 * of the days spanning both periods, each sum written once (Drizzle's builder gave every use of a sum its own
 * bound parameters, so SQLite could not share them and summed ~20 columns a row instead of 6), from the rollup in
 * query order when the span is most of its history (readsInQueryOrder), else (or under a device) the detail.
 */
export async function queryPeriodSums(db: Db, o: PeriodSumsOptions): Promise<{ sql: string; params: Record<string, number> }> {
  // biome-ignore lint/complexity/useMathMinMax: ISO dates, compared as strings
  const start = o.p1.start < o.p2.start ? o.p1.start : o.p2.start;
  const from = o.since && o.since > start ? o.since : start;
  // biome-ignore lint/complexity/useMathMinMax: ISO dates, compared as strings
  const to = o.p1.end > o.p2.end ? o.p1.end : o.p2.end;
  const queryOrder = !o.device && (await readsInQueryOrder(db, o.siteId, from, to));
  const day = queryOrder ? "+x.day" : "x.day";
  const type = typeFilterCode(o.searchType);
  const inP = (n: 1 | 2) => `${day} between $p${n}s and $p${n}e`;
  const sum = (n: 1 | 2, col: string) => `coalesce(sum(case when ${inP(n)} then x.${col} end), 0)`;
  const table = o.device || (db.engine === "sqlite" && !queryOrder) ? "gsc_query_detail" : "gsc_day_query_totals";
  const sql = `select x.query_id as query_id, ${sum(1, "clicks")} as c1, ${sum(1, "impressions")} as i1, ${sum(1, "sum_position")} as s1,
       ${sum(2, "clicks")} as c2, ${sum(2, "impressions")} as i2, ${sum(2, "sum_position")} as s2
  from ${table} x
 where x.site_id = $site_id and ${day} >= $from and ${day} <= $to${type === null ? "" : " and x.type = $type"}${o.device ? " and x.device = $device" : ""}
   and (${inP(1)} or ${inP(2)})
 group by x.query_id`;
  const params: Record<string, number> = {
    site_id: o.siteId,
    from: dayNumber(from),
    to: dayNumber(to),
    p1s: dayNumber(o.p1.start),
    p1e: dayNumber(o.p1.end),
    p2s: dayNumber(o.p2.start),
    p2e: dayNumber(o.p2.end),
  };
  if (type !== null) params.type = type;
  if (o.device) params.device = deviceCode(o.device);
  return { sql, params };
}

/**
 * A filter keeping the rows of `rel` that can be among its first `$limit` rows ordered by `value` (`dir`), then
 * anything: `value` at or before the `$limit`-th row's (`$cut` = limit - 1; every row when there are fewer), ties
 * with it included. Only those rows then get their text joined and sorted by it, not every row of the window.
 */
export const amongFirst = (rel: string, value: string, dir: "asc" | "desc", where = "1 = 1") =>
  `${value} ${dir === "asc" ? "<=" : ">="} coalesce((select ${value} from ${rel} where ${where} order by 1 ${dir} limit 1 offset $cut), ${value})`;

/** Whether a row's day lies in a period of 'YYYY-MM-DD' days (both included). */
export const dayIn = (x: DayTable, p: { start: string; end: string }, queryOrder = false) =>
  sql`${queryOrder ? sql`+${x.day}` : x.day} between ${dayNumber(p.start)} and ${dayNumber(p.end)}`;

/** Σ of a column as a number (0 over no rows). */
export const sumOf = (col: SQLWrapper) => sql<number>`coalesce(sum(${col}), 0)`.mapWith(Number);

/** Search Console's position over grouped rows: Σ sum_position / Σ impressions / 100, `orElse` (0) without impressions. */
export function positionOfRows(sumPosition: SQLWrapper, impressions: SQLWrapper): SQL<number> {
  return sql<number>`coalesce(cast(sum(${sumPosition}) as double precision) / nullif(sum(${impressions}), 0) / ${sql.raw(String(sumPositionScale))}, 0)`.mapWith(
    Number,
  );
}

/** The same, null without impressions. */
export function positionOrNull(sumPosition: SQLWrapper, impressions: SQLWrapper): SQL<number | null> {
  return sql<
    number | null
  >`cast(sum(${sumPosition}) as double precision) / nullif(sum(${impressions}), 0) / ${sql.raw(String(sumPositionScale))}`.mapWith(Number);
}

/** A stored day as 'YYYY-MM-DD' in SQL (the VIEW's `date`). */
export function dateOfDay(db: Db, day: SQLWrapper): SQL<string> {
  return db.engine === "pg"
    ? sql<string>`to_char(date '1970-01-01' + ${day}, 'YYYY-MM-DD')`
    : sql<string>`date(${day} * 86400, 'unixepoch')`;
}
