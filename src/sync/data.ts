import { and, asc, between, count, countDistinct, eq, inArray, sql } from "drizzle-orm";
import type { Db, Orm, Q, SqliteDb } from "../db/index.ts";
import * as pgSchema from "../db/pg/schema.ts";
import { upsertRowsPg } from "../db/pg/synced-rows.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { gscPerformanceData, gscSyncedDays } from "../db/sqlite/schema.ts";
import { fromExcluded, sqliteOrm } from "../db/sql.ts";
import { isFinalDay } from "./dates.ts";
import type { SearchType, SourceRow } from "./source.ts";

// The synced Search Console data: rows in gsc_performance_data, completion markers in gsc_synced_days.
// The functions "inside a write" take the transaction handle of db.tx (or the legacy db.write): on
// SQLite they run at once, synchronously, as statements prepared per connection (the ingest's hot path);
// on PostgreSQL they are awaited (multi-row upserts, src/db/pg/synced-rows.ts).

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
      set: fromExcluded("clicks", "impressions", "ctr", "position"),
    })
    .returning({ id: g.id })
    .prepare(),
  deleteByIds: orm
    .delete(g)
    .where(sql`${g.id} in (select value from json_each(${p("ids")}))`)
    .returning({ id: g.id })
    .prepare(),
}));

const dayRows = and(eq(g.site_id, p("site_id")), eq(g.date, p("date")), eq(g.search_type, p("search_type")));
const keyOrder = [g.page, g.query, g.device];

// Walks a day's rows in the order of the unique (site_id, date, page, query, device, ...) index, so
// each chunk is a short index range scan (a row-value cursor) instead of a rescan of the whole day.
const readStatements = perConnection((orm) => ({
  firstRows: orm
    .select({ id: g.id, page: g.page, query: g.query, device: g.device })
    .from(g)
    .where(dayRows)
    .orderBy(...keyOrder)
    .limit(p("limit"))
    .prepare(),
  nextRows: orm
    .select({ id: g.id, page: g.page, query: g.query, device: g.device })
    .from(g)
    .where(and(dayRows, sql`(${g.page}, ${g.query}, ${g.device}) > (${p("page")}, ${p("query")}, ${p("device")})`))
    .orderBy(...keyOrder)
    .limit(p("limit"))
    .prepare(),
}));

/** A stored row's id and key within its site, day and search type. */
export type DayRowKey = { id: number; page: string; query: string; device: string };

/**
 * Inside a write: stores rows of one site, day and search type (insert or update on the row key); returns
 * their ids (one per row, in order). On SQLite the rows are stored before this returns.
 */
export async function upsertRows(tx: Q | Orm, siteId: number, day: string, type: SearchType, rows: SourceRow[]): Promise<number[]> {
  const orm = sqliteOrm(tx);
  if (!orm) return upsertRowsPg(tx as Q, siteId, day, type, rows);
  const { upsert } = writeStatements(orm);
  const ids: number[] = [];
  for (const r of rows) {
    const row = upsert.get({
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
    ids.push(row!.id);
  }
  return ids;
}

/** Up to `limit` rows of one site, day and search type in key order, after the key `after` (from the start when null). */
export async function findDayRowKeys(
  db: Db,
  siteId: number,
  day: string,
  type: SearchType,
  after: DayRowKey | null,
  limit: number,
): Promise<DayRowKey[]> {
  if (db.engine === "sqlite") {
    const s = readStatements(db.read);
    const base = { site_id: siteId, date: day, search_type: type, limit };
    return after ? s.nextRows.all({ ...base, page: after.page, query: after.query, device: after.device }) : s.firstRows.all(base);
  }
  const t = db.t.gscPerformanceData;
  const day_ = and(eq(t.site_id, siteId), eq(t.date, day), eq(t.search_type, type));
  return db.q
    .select({ id: t.id, page: t.page, query: t.query, device: t.device })
    .from(t)
    .where(after ? and(day_, sql`(${t.page}, ${t.query}, ${t.device}) > (${after.page}, ${after.query}, ${after.device})`) : day_)
    .orderBy(asc(t.page), asc(t.query), asc(t.device))
    .limit(limit);
}

/** Inside a write: deletes rows by id; returns how many. On SQLite they are deleted before this returns. */
export async function deleteRowsById(tx: Q | Orm, ids: number[]): Promise<number> {
  const orm = sqliteOrm(tx);
  if (orm) return writeStatements(orm).deleteByIds.all({ ids: JSON.stringify(ids) }).length;
  // Given only the transaction (PostgreSQL's here), the engine's tables are known: pg's.
  const t = pgSchema.gscPerformanceData;
  return (await (tx as Q).delete(t).where(inArray(t.id, ids)).returning({ id: t.id })).length;
}

/** Inside a write: records that every row of this site, day and search type is stored (at once on SQLite). */
export async function markDaySynced(tx: Q | Orm, siteId: number, day: string, type: SearchType, rowCount: number): Promise<void> {
  const at = new Date().toISOString();
  const orm = sqliteOrm(tx);
  if (orm) {
    orm
      .insert(gscSyncedDays)
      .values({ site_id: siteId, date: day, search_type: type, row_count: rowCount, synced_at: at })
      .onConflictDoUpdate({
        target: [gscSyncedDays.site_id, gscSyncedDays.date, gscSyncedDays.search_type],
        set: { row_count: rowCount, synced_at: at },
      })
      .run();
    return;
  }
  const m = pgSchema.gscSyncedDays;
  await (tx as Q)
    .insert(m)
    .values({ site_id: siteId, date: day, search_type: type, row_count: rowCount, synced_at: at })
    .onConflictDoUpdate({ target: [m.site_id, m.date, m.search_type], set: { row_count: rowCount, synced_at: at } });
}

/** Completion markers of a site between two days, keyed `day|type`. */
export async function findSyncedDays(db: Db, siteId: number, start: string, end: string) {
  const m = db.t.gscSyncedDays;
  const rows = await db.q
    .select()
    .from(m)
    .where(and(eq(m.site_id, siteId), between(m.date, start, end)));
  return new Map(rows.map((r) => [`${r.date}|${r.search_type}`, r]));
}

// The distinct days of a site's rows by a skip scan over the (site_id, date, ...) unique index: one
// index seek per day, so a site with millions of rows costs a few hundred seeks, not a full scan.
// `final` marks the days whose rows were stored once Search Console stopped revising them (their
// completion marker, written only for final days).
const DATA_DAYS_SQL = `with recursive days(d) as (
  select min(date) from gsc_performance_data where site_id = $site_id
  union all
  select (select min(date) from gsc_performance_data where site_id = $site_id and date > days.d) from days where days.d is not null
)
select d as date, exists(select 1 from gsc_synced_days m where m.site_id = $site_id and m.date = d) as marked
  from days where d is not null`;

/** Every day with stored rows for a site, oldest first, each with whether its rows are final. */
export async function findDataDays(db: Db, siteId: number, now: Date = new Date()): Promise<{ date: string; final: boolean }[]> {
  if (db.engine === "sqlite") return findDataDaysSqlite(db, siteId, now);
  // The same skip scan: PostgreSQL has no skip scan of its own before version 18 either.
  const r = await db.q.execute<{ date: string; marked: boolean }>(sql`with recursive days(d) as (
      select min(date) from gsc_performance_data where site_id = ${siteId}
      union all
      select (select min(date) from gsc_performance_data where site_id = ${siteId} and date > days.d) from days where days.d is not null
    )
    select d as date, exists(select 1 from gsc_synced_days m where m.site_id = ${siteId} and m.date = d) as marked
      from days where d is not null order by d`);
  return r.rows.map((row) => ({ date: row.date, final: row.marked && isFinalDay(row.date, now) }));
}

/** findDataDays, synchronously on SQLite's reader (for SQLite-only callers). */
export function findDataDaysSqlite(db: SqliteDb, siteId: number, now: Date = new Date()): { date: string; final: boolean }[] {
  return db.raw.reader
    .query<{ date: string; marked: number }, [{ site_id: number }]>(DATA_DAYS_SQL)
    .all({ site_id: siteId })
    .map((r) => ({ date: r.date, final: r.marked === 1 && isFinalDay(r.date, now) }));
}

/**
 * A site's daily data coverage as the original reported it (every day that has rows: how many, the
 * newest, the oldest), plus `final_days`: those of them Search Console will no longer revise.
 */
export async function dataDaysSummary(db: Db, siteId: number, now: Date = new Date()) {
  const days = await findDataDays(db, siteId, now);
  return {
    total_days: days.length,
    latest_date: days.at(-1)?.date ?? null,
    oldest_date: days[0]?.date ?? null,
    final_days: days.filter((d) => d.final).length,
  };
}

/** Per site: the days between two days (both included) with a completion marker. */
export async function countSyncedDaysBySite(db: Db, start: string, end: string): Promise<Map<number, number>> {
  const m = db.t.gscSyncedDays;
  const rows = await db.q
    .select({ site_id: m.site_id, days: countDistinct(m.date) })
    .from(m)
    .where(between(m.date, start, end))
    .groupBy(m.site_id);
  return new Map(rows.map((r) => [r.site_id, r.days]));
}

/** A site's clicks, impressions and stored rows per day (every search type) between two days, oldest first. */
export async function findDailyTotals(db: Db, siteId: number, start: string, end: string) {
  const t = db.t.gscPerformanceData;
  return db.q
    .select({
      date: t.date,
      clicks: sql<number>`sum(${t.clicks})`.mapWith(Number),
      impressions: sql<number>`sum(${t.impressions})`.mapWith(Number),
      rows: count(),
    })
    .from(t)
    .where(and(eq(t.site_id, siteId), between(t.date, start, end)))
    .groupBy(t.date)
    .orderBy(t.date);
}
