import { and, between, countDistinct, eq, max, min, sql } from "drizzle-orm";
import type { Db, Orm, Q } from "../db/index.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { hourlyRankings } from "../db/sqlite/schema.ts";
import { fromExcluded, sqliteOrm } from "../db/sql.ts";
import { hourOf } from "./dates.ts";
import { PermanentError } from "./errors.ts";
import type { HourlySourceRow } from "./source.ts";
import { pgSchema, pgSyncedRows } from "../db/pg/driver.ts";

// The synced hourly data: rows in hourly_rankings, one per (site, hour, query, page, device).

const p = sql.placeholder;
const h = hourlyRankings;

const writeStatements = perConnection((orm) => ({
  upsert: orm
    .insert(h)
    .values({
      site_id: p("site_id"),
      date: p("date"),
      hour: p("hour"),
      hour_timestamp: p("hour_timestamp"),
      query: p("query"),
      page: p("page"),
      device: p("device"),
      clicks: p("clicks"),
      impressions: p("impressions"),
      ctr: p("ctr"),
      position: p("position"),
      fetched_at: p("fetched_at"),
    })
    .onConflictDoUpdate({
      target: [h.site_id, h.hour_timestamp, h.query, h.page, h.device],
      set: fromExcluded("clicks", "impressions", "ctr", "position", "fetched_at"),
    })
    .prepare(),
  // A bounded delete (SQLite has no DELETE ... LIMIT by default): the oldest stale rows of one day.
  deleteStale: orm
    .delete(h)
    .where(
      sql`${h.id} in (select ${h.id} from ${h} where ${h.site_id} = ${p("site_id")} and ${h.date} = ${p("date")} and ${h.fetched_at} < ${p("pass")} limit ${p("limit")})`,
    )
    .returning({ id: h.id })
    .prepare(),
}));

/**
 * Inside a write: stores hourly rows of one site (insert or update on the row key), stamped with the
 * pass that fetched them. An HOUR key that is not a timestamp fails the task: the API changed. On
 * SQLite the rows are stored before this returns (prepared statements); on PostgreSQL, multi-row upserts.
 */
export async function upsertHourlyRows(tx: Q | Orm, siteId: number, pass: string, rows: HourlySourceRow[]): Promise<void> {
  const stamped = rows.map((r) => {
    const at = hourOf(r.hour_timestamp);
    if (!at) throw new PermanentError(`Search Console sent an HOUR key that is not a timestamp: '${r.hour_timestamp}'`);
    return { site_id: siteId, ...at, ...r, fetched_at: pass };
  });
  const orm = sqliteOrm(tx);
  if (!orm) return pgSyncedRows().upsertHourlyRowsPg(tx as Q, stamped);
  const { upsert } = writeStatements(orm);
  for (const r of stamped) upsert.run(r);
}

/** Inside a write: deletes up to `limit` rows of one site and day stored before the pass `pass`; returns how many. */
export async function deleteStaleHourlyRows(tx: Q | Orm, siteId: number, day: string, pass: string, limit: number): Promise<number> {
  const orm = sqliteOrm(tx);
  if (orm) return writeStatements(orm).deleteStale.all({ site_id: siteId, date: day, pass, limit }).length;
  const t = pgSchema().hourlyRankings;
  const stale = sql`${t.id} in (select ${t.id} from ${t} where ${t.site_id} = ${siteId} and ${t.date} = ${day} and ${t.fetched_at} < ${pass} limit ${limit})`;
  return (await (tx as Q).delete(t).where(stale).returning({ id: t.id })).length;
}

/** The days of a site between two days whose hourly rows reach hour 23 (the day is complete). */
export async function findCompleteHourlyDays(db: Db, siteId: number, start: string, end: string): Promise<Set<string>> {
  const t = db.t.hourlyRankings;
  const rows = await db.q
    .selectDistinct({ date: t.date })
    .from(t)
    .where(and(eq(t.site_id, siteId), between(t.date, start, end), eq(t.hour, 23)));
  return new Set(rows.map((r) => r.date));
}

/** Days with hourly data for a site: how many, the newest and the oldest. */
export async function hourlyDaysSummary(db: Db, siteId: number) {
  const t = db.t.hourlyRankings;
  const [row] = await db.q
    .select({ total_days: countDistinct(t.date), latest_date: max(t.date), oldest_date: min(t.date) })
    .from(t)
    .where(eq(t.site_id, siteId));
  return { total_days: row?.total_days ?? 0, latest_date: row?.latest_date ?? null, oldest_date: row?.oldest_date ?? null };
}
