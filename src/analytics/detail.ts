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
  o: { searchType?: string | null; since?: string | null; until?: string | null },
  ...more: (SQL | undefined)[]
) {
  const type = typeFilterCode(o.searchType);
  return and(
    eq(x.site_id, siteId),
    o.since ? gte(x.day, dayNumber(o.since)) : undefined,
    o.until ? lte(x.day, dayNumber(o.until)) : undefined,
    // Every type named: the rollup is keyed (site_id, type, day, ...), so a window of every type is one key range per
    // type, not the site's rows with the day as a filter.
    type === null ? sql`${x.type} in (${sql.raw(allTypeCodes)})` : eq(x.type, type),
    ...more,
  );
}

/** Every stored search type's code, as an SQL list. */
export const allTypeCodes = searchTypeCodes.map((_, i) => i + 1).join(", ");

/**
 * The rows a read of every query over a window sums: the day x query rollup (keyed (site_id, type, day, query_id) on
 * SQLite since migration 0032: the window's days are one key range per type; PostgreSQL keeps an index on (site_id,
 * day, type, query_id)). It has fewer rows than the detail's window and the same sums per query id.
 */
export function queryRowsTable(db: Db): Db["t"]["gscDayQueryTotals"] {
  return db.t.gscDayQueryTotals as Db["t"]["gscDayQueryTotals"];
}

/**
 * SQLite: the stored days of the day x query rollup of site $site_id from day `start` to `end` of some types (type
 * codes or SQL expressions; null: every type it holds), as the CTEs `rt(type)` and `rd(type, day)` (for a `with
 * recursive`; rows past `end` too: keep `rd.day <= end`): a seek per type and day on the rollup's (site_id, type, day)
 * key prefix, the next after the last. A read of some queries' rows then seeks (site_id, rd.type, rd.day, query_id)
 * for each: the rollup keyed by day holds a query's rows one per day, not as one key range.
 */
export function rollupDaysCte(types: readonly (number | string)[] | null, start: string, end: string): string {
  const next = (col: string, where: string) => `(select min(${col}) from gsc_day_query_totals where site_id = $site_id and ${where})`;
  const rt = types
    ? `rt(type) as (${types.map((t) => `select ${t}`).join(" union all ")})`
    : `rt(type) as (select ${next("type", "1 = 1")} union all select ${next("type", "type > rt.type")} from rt where rt.type is not null)`;
  return `${rt},
rd(type, day) as (select rt.type, ${next("day", `type = rt.type and day >= ${start}`)} from rt where rt.type is not null
  union all
  select rd.type, ${next("day", "type = rd.type and day > rd.day")} from rd where rd.day <= ${end})`;
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
 * bound parameters, so SQLite could not share them and summed ~20 columns a row instead of 6), from the rollup's
 * days spanning both (the detail's under a device).
 */
export function queryPeriodSums(o: PeriodSumsOptions): { sql: string; params: Record<string, number> } {
  // biome-ignore lint/complexity/useMathMinMax: ISO dates, compared as strings
  const start = o.p1.start < o.p2.start ? o.p1.start : o.p2.start;
  const from = o.since && o.since > start ? o.since : start;
  // biome-ignore lint/complexity/useMathMinMax: ISO dates, compared as strings
  const to = o.p1.end > o.p2.end ? o.p1.end : o.p2.end;
  const day = "x.day";
  const type = typeFilterCode(o.searchType);
  const inP = (n: 1 | 2) => `${day} between $p${n}s and $p${n}e`;
  const sum = (n: 1 | 2, col: string) => `coalesce(sum(case when ${inP(n)} then x.${col} end), 0)`;
  const table = o.device ? "gsc_query_detail" : "gsc_day_query_totals";
  const sql = `select x.query_id as query_id, ${sum(1, "clicks")} as c1, ${sum(1, "impressions")} as i1, ${sum(1, "sum_position")} as s1,
       ${sum(2, "clicks")} as c2, ${sum(2, "impressions")} as i2, ${sum(2, "sum_position")} as s2
  from ${table} x
 where x.site_id = $site_id and ${day} >= $from and ${day} <= $to${type === null ? ` and x.type in (${allTypeCodes})` : " and x.type = $type"}${o.device ? " and x.device = $device" : ""}
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
export const dayIn = (x: DayTable, p: { start: string; end: string }) =>
  sql`${x.day} between ${dayNumber(p.start)} and ${dayNumber(p.end)}`;

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
