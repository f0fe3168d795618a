import { and, between, count, countDistinct, eq, max, min, sql } from "drizzle-orm";
import type { Db, Orm } from "../db/index.ts";
import { perConnection } from "../db/prepared.ts";
import { gscPerformanceData, gscSyncedDays } from "../db/schema.ts";
import type { SearchType, SourceRow } from "./source.ts";

// The synced Search Console data: rows in gsc_performance_data, completion markers in gsc_synced_days.

const p = sql.placeholder;
const g = gscPerformanceData;

const writeStatements = perConnection((orm) => ({
  // Re-running a day updates the same rows instead of adding copies (unique on the six key columns).
  upsert: orm
    .insert(g)
    .values({
      site_id: p("site_id"),
      date: p("date"),
      page: p("page"),
      query: p("query"),
      device: p("device"),
      search_type: p("search_type"),
      clicks: p("clicks"),
      impressions: p("impressions"),
      ctr: p("ctr"),
      position: p("position"),
    })
    .onConflictDoUpdate({
      target: [g.site_id, g.date, g.page, g.query, g.device, g.search_type],
      set: {
        clicks: sql`excluded.clicks`,
        impressions: sql`excluded.impressions`,
        ctr: sql`excluded.ctr`,
        position: sql`excluded.position`,
      },
    })
    .prepare(),
  deleteChunk: orm
    .delete(g)
    .where(
      sql`${g.id} in (select id from gsc_performance_data
        where site_id = ${p("site_id")} and date = ${p("date")} and search_type = ${p("search_type")} limit ${p("limit")})`,
    )
    .returning({ id: g.id })
    .prepare(),
}));

/** Inside a write: stores rows of one site, day and search type (insert or update on the row key). */
export function upsertRows(tx: Orm, siteId: number, day: string, type: SearchType, rows: SourceRow[]): void {
  const { upsert } = writeStatements(tx);
  for (const r of rows) {
    upsert.run({
      site_id: siteId,
      date: day,
      search_type: type,
      page: r.page,
      query: r.query,
      device: r.device,
      clicks: r.clicks,
      impressions: r.impressions,
      ctr: r.ctr,
      position: r.position,
    });
  }
}

/** Inside a write: deletes up to `limit` rows of one site, day and search type; returns how many. */
export function deleteDayRows(tx: Orm, siteId: number, day: string, type: SearchType, limit: number): number {
  return writeStatements(tx).deleteChunk.all({ site_id: siteId, date: day, search_type: type, limit }).length;
}

/** Inside a write: records that every row of this site, day and search type is stored. */
export function markDaySynced(tx: Orm, siteId: number, day: string, type: SearchType, rowCount: number): void {
  const at = new Date().toISOString();
  tx.insert(gscSyncedDays)
    .values({ site_id: siteId, date: day, search_type: type, row_count: rowCount, synced_at: at })
    .onConflictDoUpdate({
      target: [gscSyncedDays.site_id, gscSyncedDays.date, gscSyncedDays.search_type],
      set: { row_count: rowCount, synced_at: at },
    })
    .run();
}

/** Inside a write: forgets that a day was synced (its rows are about to be replaced). */
export function unmarkDay(tx: Orm, siteId: number, day: string, type: SearchType): void {
  tx.delete(gscSyncedDays)
    .where(and(eq(gscSyncedDays.site_id, siteId), eq(gscSyncedDays.date, day), eq(gscSyncedDays.search_type, type)))
    .run();
}

/** Completion markers of a site between two days, keyed `day|type`. */
export async function findSyncedDays(db: Db, siteId: number, start: string, end: string) {
  const rows = db.read
    .select()
    .from(gscSyncedDays)
    .where(and(eq(gscSyncedDays.site_id, siteId), between(gscSyncedDays.date, start, end)))
    .all();
  return new Map(rows.map((r) => [`${r.date}|${r.search_type}`, r]));
}

/** Days with synced data for a site: how many, the newest and the oldest. */
export async function syncedDaysSummary(db: Db, siteId: number) {
  const row = db.read
    .select({
      total_days: countDistinct(gscSyncedDays.date),
      latest_date: max(gscSyncedDays.date),
      oldest_date: min(gscSyncedDays.date),
    })
    .from(gscSyncedDays)
    .where(eq(gscSyncedDays.site_id, siteId))
    .get();
  return { total_days: row?.total_days ?? 0, latest_date: row?.latest_date ?? null, oldest_date: row?.oldest_date ?? null };
}

/** Number of stored rows for a site (tests and diagnostics). */
export async function countRows(db: Db, siteId: number): Promise<number> {
  return db.read.select({ n: count() }).from(g).where(eq(g.site_id, siteId)).get()?.n ?? 0;
}
