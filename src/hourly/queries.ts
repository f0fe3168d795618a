import { and, between, eq, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { containsAnyOfJsonList, inJsonList } from "../db/sql.ts";
import type { HourlyRankingItem, HourlyRankingRequest } from "./schemas.ts";

/**
 * Hourly buckets of a site between two days, one per hour and query (or page): clicks and impressions
 * summed over the other dimensions (page or query, device), ctr = clicks / impressions, position
 * weighted by impressions. Filtered by exact queries or pages, or queries containing a term; ordered
 * by hour, then key; at most `limit`.
 */
export async function findHourlyRankings(
  db: Db,
  r: Pick<HourlyRankingRequest, "start_date" | "end_date" | "queries" | "pages" | "group_by" | "matching_mode"> & {
    siteId: number;
    limit: number;
  },
): Promise<HourlyRankingItem[]> {
  const { hourlyRankings: h } = db.t;
  const key = r.group_by === "page" ? h.page : h.query;
  const terms = r.group_by === "page" ? r.pages : r.queries;
  let filter: SQL | undefined;
  if (terms && terms.length > 0) {
    const list = JSON.stringify(terms);
    filter = r.group_by === "query" && r.matching_mode === "partial" ? containsAnyOfJsonList(db, key, list) : inJsonList(db, key, list);
  }
  // PostgreSQL sums integers as bigint (a string in node-postgres): numbers on both engines.
  const impressions = sql<number>`sum(${h.impressions})`.mapWith(Number);
  const rows = await db.q
    .select({
      date: h.date,
      hour: h.hour,
      hour_timestamp: sql<string>`min(${h.hour_timestamp})`,
      key,
      clicks: sql<number>`sum(${h.clicks})`.mapWith(Number),
      impressions,
      // Rows with no impressions carry no weight: fall back to the plain mean so position is never null.
      position: sql<number>`coalesce(sum(${h.position} * ${h.impressions}) / nullif(${impressions}, 0), avg(${h.position}))`.mapWith(
        Number,
      ),
    })
    .from(h)
    .where(and(eq(h.site_id, r.siteId), between(h.date, r.start_date, r.end_date), filter))
    .groupBy(h.date, h.hour, key)
    .orderBy(h.date, h.hour, key)
    .limit(r.limit);
  return rows.map(({ key: k, ...row }) => ({
    datetime: `${row.date} ${String(row.hour).padStart(2, "0")}:00`,
    ...row,
    query: r.group_by === "query" ? k : null,
    page: r.group_by === "page" ? k : null,
    ctr: row.impressions > 0 ? row.clicks / row.impressions : 0,
  }));
}
