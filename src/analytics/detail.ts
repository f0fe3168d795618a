import { and, type Column, eq, gte, lte, type SQL, type SQLWrapper, sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { searchTypeCodes, sumPositionScale, type SearchTypeCode } from "../db/enums.ts";
import { dayNumber } from "../sync/grains.ts";

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
    type === null ? undefined : eq(x.type, type),
    ...more,
  );
}

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
