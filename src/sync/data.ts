import type { Database } from "bun:sqlite";
import { and, between, count, countDistinct, eq, sql } from "drizzle-orm";
import type { Db, Orm, Q, SqliteDb } from "../db/index.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { gscSyncedDays } from "../db/sqlite/schema.ts";
import { sqliteOrm } from "../db/sql.ts";
import { isFinalDay } from "./dates.ts";
import { dayDate, dayNumber, deviceCode, typeCode } from "./grains.ts";
import { type KeyedColumns, keyRows, type Rollup, rollupOf } from "./keyed-rows.ts";
import type { SearchType, SourceRow } from "./source.ts";
import { eitherIds, type KnownTextIds, type TextIds, unknownTexts } from "./text-ids.ts";
import { pgSchema, pgSyncedRows } from "../db/pg/driver.ts";
import { giveWay } from "./give-way.ts";
import { copyWalFramesOffThread } from "./wal-copier.ts";

// The synced Search Console data: the query detail in gsc_query_detail, completion markers in gsc_synced_days.
// The functions "inside a write" take the transaction handle of db.tx (or the legacy db.write): on
// SQLite they run at once, synchronously, as statements prepared per connection (the ingest's hot path);
// on PostgreSQL they are awaited (multi-row upserts, src/db/pg/synced-rows.ts).

// The query detail is stored compactly (issue 18, docs/design/grains.md): gsc_query_detail keyed by
// (site, day number, type code, page id, query id, device code), page URLs and query texts once per site in
// the gsc_pages / gsc_queries dictionaries, sum_position instead of ctr and position. Rows are addressed by
// a DayRowKey id: "site|day|type|page_id|query_id|device" (the table has no row id of its own).

// Bare bun:sqlite statements (positional parameters, no per-row mapping): the ingest's hot path.
const writeStatements = perConnection((orm) => {
  const c = (orm as Orm & { $client: Database }).$client;
  // A batch's distinct texts are looked up in one statement (a JSON array joined to the unique index, one
  // seek each without a call per text); the new ones are added in one statement from a JSON array.
  const dictionary = (table: "gsc_pages" | "gsc_queries", col: "page" | "query") => ({
    find: c.prepare<{ id: number; text: string }, [number, string]>(
      `select j.value as text, t.id as id from json_each(?2) j cross join ${table} t on t.site_id = ?1 and t.${col} = j.value`,
    ),
    add: c.prepare<{ id: number; text: string }, [number, string]>(
      `insert into ${table} (site_id, ${col}) select ?1, value from json_each(?2) returning id, ${col} as text`,
    ),
  });
  return {
    pages: dictionary("gsc_pages", "page"),
    queries: dictionary("gsc_queries", "query"),
    // One row per statement: measured as fast as 1,000-row statements in bun:sqlite (the B-tree work dominates).
    // Re-running a day updates the same rows instead of adding copies (the key is the primary key).
    upsert: c.prepare<unknown, number[]>(
      `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (site_id, day, type, page_id, query_id, device)
       do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position`,
    ),
    deleteRow: c.prepare<unknown, number[]>(
      "delete from gsc_query_detail where site_id = ? and day = ? and type = ? and page_id = ? and query_id = ? and device = ?",
    ),
    // Every rollup row of the day, whether or not the detail still has its query: one key range of the rollup's
    // (site_id, type, day, query_id) key (tests and benches rebuild a day this way).
    clearRollup: c.prepare<unknown, number[]>("delete from gsc_day_query_totals where site_id = ? and day = ? and type = ?"),
    // writeDayRows: the day's stored keys (in key order), and multi-row upserts that leave equal rows untouched.
    dayKeys: c.prepare<[number, number, number], number[]>(
      "select page_id, query_id, device from gsc_query_detail where site_id = ? and day = ? and type = ? order by page_id, query_id, device",
    ),
    upsertChanged: rowsStatement(
      c,
      `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) values`,
      9,
      `on conflict (site_id, day, type, page_id, query_id, device)
       do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
       where gsc_query_detail.clicks <> excluded.clicks or gsc_query_detail.impressions <> excluded.impressions
          or gsc_query_detail.sum_position <> excluded.sum_position`,
    ),
    deleteRollupRow: c.prepare<unknown, number[]>(
      "delete from gsc_day_query_totals where site_id = ? and type = ? and day = ? and query_id = ?",
    ),
    upsertRollupChanged: rowsStatement(
      c,
      "insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) values",
      7,
      `on conflict (site_id, type, day, query_id)
       do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
       where gsc_day_query_totals.clicks <> excluded.clicks or gsc_day_query_totals.impressions <> excluded.impressions
          or gsc_day_query_totals.sum_position <> excluded.sum_position`,
    ),
    buildRollup: c.prepare<unknown, number[]>(
      `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
       select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position)
         from gsc_query_detail where site_id = ?1 and day = ?2 and type = ?3
        group by query_id`,
    ),
  };
});

/**
 * SQLite: copies this process's WAL frames into the file after a day's switch, so a backfill's copying runs on the sync's
 * CPUs, on a thread of its own (src/sync/wal-copier.ts: the sync goes on meanwhile); resolves once copied. Nothing on
 * PostgreSQL.
 */
export function checkpointOwnWrites(db: Db): Promise<void> {
  return db.engine === "sqlite" ? copyWalFramesOffThread(db) : Promise.resolve();
}

/** Rows per multi-row statement of writeDayRows (fewer calls into SQLite; one statement per row cost more). */
const ROWS_PER_STATEMENT = 64;

/** A statement of `ROWS_PER_STATEMENT` rows of `width` parameters each, and one of a single row (for the rest). */
function rowsStatement(c: Database, head: string, width: number, tail: string) {
  const tuple = `(${Array.from({ length: width }, () => "?").join(", ")})`;
  const of = (n: number) => c.prepare<unknown, number[]>(`${head} ${Array.from({ length: n }, () => tuple).join(", ")} ${tail}`);
  return { many: of(ROWS_PER_STATEMENT), one: of(1), width };
}

/**
 * Dictionary ids (gsc_pages or gsc_queries) of a site's distinct texts on SQLite, adding the missing ones in one
 * statement. The texts go in sorted (the unique index's order): its seeks and inserts then walk its pages in
 * order instead of at random (a new text ~1 µs cheaper to add; the sort ~0.3).
 */
function sqliteIds(dict: ReturnType<typeof writeStatements>["pages"], siteId: number, distinct: string[]): Map<string, number> {
  const ids = new Map<string, number>();
  if (distinct.length === 0) return ids;
  distinct.sort();
  for (const r of dict.find.all(siteId, JSON.stringify(distinct))) ids.set(r.text, r.id);
  if (ids.size < distinct.length) {
    const missing = distinct.filter((t) => !ids.has(t));
    for (const r of dict.add.all(siteId, JSON.stringify(missing))) ids.set(r.text, r.id);
  }
  return ids;
}

/**
 * Inside a write: the dictionary ids (gsc_pages, gsc_queries) of rows' pages and queries in one site,
 * adding the texts not there yet. Texts in `known` (ids a task saw committed) are not looked up; the ids
 * this looks up or adds go to `known.resolved` (kept once the write commits). On SQLite at once.
 */
export async function rowTextIds(tx: Q | Orm, siteId: number, rows: SourceRow[], known?: KnownTextIds): Promise<RowTextIds> {
  const orm = sqliteOrm(tx);
  return orm ? sqliteTextIds(orm, siteId, rows, known) : pgSyncedRows().rowTextIdsPg(tx as Q, siteId, rows, known);
}

type RowTextIds = { pages: TextIds; queries: TextIds };

/** rowTextIds on SQLite, synchronously. */
function sqliteTextIds(orm: Orm, siteId: number, rows: SourceRow[], known?: KnownTextIds): RowTextIds {
  const s = writeStatements(orm);
  const pages = sqliteIds(s.pages, siteId, unknownTexts(rows, "page", known?.pages));
  const queries = sqliteIds(s.queries, siteId, unknownTexts(rows, "query", known?.queries));
  known?.resolved(pages, queries);
  return { pages: eitherIds(known?.pages, pages), queries: eitherIds(known?.queries, queries) };
}

/**
 * Inside a write: stores rows of one site, day and search type (insert or update on the row key) in the
 * compact query detail, adding new pages and queries to the site's dictionaries; returns each row's key id
 * (in order). On SQLite the rows are stored before this returns. The day × query
 * rollup is rebuilt once the day is complete (rebuildDayQueryTotals).
 */
export async function upsertRows(tx: Q | Orm, siteId: number, day: string, type: SearchType, rows: SourceRow[]): Promise<string[]> {
  const orm = sqliteOrm(tx);
  if (!orm) return pgSyncedRows().upsertRowsPg(tx as Q, siteId, dayNumber(day), typeCode(type), rows);
  const s = writeStatements(orm);
  const d = dayNumber(day);
  const t = typeCode(type);
  const { pages, queries } = sqliteTextIds(orm, siteId, rows);
  const k = keyRows(rows, pages, queries);
  for (let i = 0; i < k.n; i++) {
    s.upsert.run(siteId, d, t, k.page[i]!, k.query[i]!, k.device[i]!, k.clicks[i]!, k.impressions[i]!, k.sumPosition[i]!);
  }
  const prefix = `${siteId}|${d}|${t}|`;
  return rows.map((r) => `${prefix}${pages.get(r.page)!}|${queries.get(r.query)!}|${deviceCode(r.device)}`);
}

/**
 * Inside a write: replaces the whole query detail of one site, day and search type with `rows` (the old
 * rows deleted, the new inserted once per key, the last row of a key winning) and its day × query rollup
 * with their sums, computed here rather than read back from the detail. Returns the detail rows stored.
 * New pages and queries go into the site's dictionaries (`known`: as rowTextIds). On SQLite it is all done before this returns.
 */
export async function replaceDayDetail(
  tx: Q | Orm,
  siteId: number,
  day: string,
  type: SearchType,
  rows: SourceRow[],
  known?: KnownTextIds,
): Promise<number> {
  const d = dayNumber(day);
  const t = typeCode(type);
  const orm = sqliteOrm(tx);
  if (!orm) return pgSyncedRows().replaceDayDetailPg(tx as Q, siteId, d, t, rows, known);
  const { pages, queries } = sqliteTextIds(orm, siteId, rows, known);
  return writeDayRows(orm, siteId, d, t, keyRows(rows, pages, queries));
}

/**
 * Inside a write, SQLite: makes `k` (one site, day number and type code; keyed: in key order, one row per key)
 * the day's stored query detail and its day × query rollup (sums computed here): rows gone from the day are
 * deleted, new and changed rows written, equal ones left untouched (a day fetched again with few changes
 * writes little), in multi-row statements. What switchStagedDay does from the staging, from memory instead.
 */
export function writeDayRows(tx: Q | Orm, siteId: number, day: number, type: number, k: KeyedColumns, r: Rollup = rollupOf(k)): number {
  const s = writeStatements(sqliteOrm(tx)!);
  // Stored keys not in the new day (both in key order: one merge pass). The stored day's query ids are the
  // queries of its rollup rows (gathered from the detail read here anyway).
  let j = 0;
  const stored = new Set<number>();
  for (const [p, q, d] of s.dayKeys.values(siteId, day, type) as [number, number, number][]) {
    stored.add(q);
    while (j < k.n && (k.page[j]! < p || (k.page[j] === p && (k.query[j]! < q || (k.query[j] === q && k.device[j]! < d))))) j++;
    if (j < k.n && k.page[j] === p && k.query[j] === q && k.device[j] === d) continue;
    s.deleteRow.run(siteId, day, type, p, q, d);
  }
  writeRows(s.upsertChanged, k.n, (o, i) => {
    o.push(siteId, day, type, k.page[i]!, k.query[i]!, k.device[i]!, k.clicks[i]!, k.impressions[i]!, k.sumPosition[i]!);
  });
  // Stored rollup rows of queries gone from the day (both in query id order).
  j = 0;
  for (const q of [...stored].sort((a, b) => a - b)) {
    while (j < r.query.length && r.query[j]! < q) j++;
    if (j >= r.query.length || r.query[j] !== q) s.deleteRollupRow.run(siteId, type, day, q);
  }
  writeRows(s.upsertRollupChanged, r.query.length, (o, i) => {
    o.push(siteId, day, type, r.query[i]!, r.clicks[i]!, r.impressions[i]!, r.sumPosition[i]!);
  });
  return k.n;
}

/** Runs a rowsStatement over n rows, `fill` appending row i's parameters. */
function writeRows(st: ReturnType<typeof rowsStatement>, n: number, fill: (out: number[], i: number) => void): void {
  const values: number[] = [];
  let i = 0;
  for (; i + ROWS_PER_STATEMENT <= n; ) {
    values.length = 0;
    for (const end = i + ROWS_PER_STATEMENT; i < end; i++) fill(values, i);
    st.many.run(...values);
    // A supervised sync worker pauses here while HTTP requests are in flight (src/sync/give-way.ts).
    giveWay();
  }
  for (; i < n; i++) {
    values.length = 0;
    fill(values, i);
    st.one.run(...values);
  }
}

/** Inside a write: deletes rows by their key id ("site|day|type|page_id|query_id|device"); returns how many. On SQLite they are deleted before this returns. */
export async function deleteRowsById(tx: Q | Orm, ids: string[]): Promise<number> {
  const keys = ids.map((id) => id.split("|").map(Number));
  const orm = sqliteOrm(tx);
  if (orm) {
    const { deleteRow } = writeStatements(orm);
    let n = 0;
    for (const k of keys) n += deleteRow.run(...k).changes;
    return n;
  }
  return pgSyncedRows().deleteRowsPg(tx as Q, keys);
}

/**
 * Inside a write: rebuilds the day × query rollup (gsc_day_query_totals) of one site, day and search type
 * from its detail rows; call it once the day's rows are all stored (and stale ones deleted).
 */
export async function rebuildDayQueryTotals(tx: Q | Orm, siteId: number, day: string, type: SearchType): Promise<void> {
  const d = dayNumber(day);
  const t = typeCode(type);
  const orm = sqliteOrm(tx);
  if (orm) {
    const s = writeStatements(orm);
    s.clearRollup.run(siteId, d, t);
    s.buildRollup.run(siteId, d, t);
    return;
  }
  await pgSyncedRows().rebuildDayQueryTotalsPg(tx as Q, siteId, d, t);
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
  const m = pgSchema().gscSyncedDays;
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

// The distinct days of a site's detail rows by a skip scan over the (site_id, day, ...) primary key: one
// index seek per day, so a site with millions of rows costs a few hundred seeks, not a full scan.
// `marked`: the day's completion marker (written only for final days) exists.
const DATA_DAYS_SQL = `with recursive days(d) as (
  select min(day) from gsc_query_detail where site_id = $site_id
  union all
  select (select min(day) from gsc_query_detail where site_id = $site_id and day > days.d) from days where days.d is not null
)
select d as day, exists(select 1 from gsc_synced_days m where m.site_id = $site_id and m.date = date(d * 86400, 'unixepoch')) as marked
  from days where d is not null`;

/** Every day with stored rows for a site, oldest first, each with whether its rows are final. */
export async function findDataDays(db: Db, siteId: number, now: Date = new Date()): Promise<{ date: string; final: boolean }[]> {
  if (db.engine === "sqlite") return findDataDaysSqlite(db, siteId, now);
  // The same skip scan: PostgreSQL has no skip scan of its own before version 18 either.
  const r = await db.q.execute<{ day: number; marked: boolean }>(sql`with recursive days(d) as (
      select min(day) from gsc_query_detail where site_id = ${siteId}
      union all
      select (select min(day) from gsc_query_detail where site_id = ${siteId} and day > days.d) from days where days.d is not null
    )
    select d as day, exists(select 1 from gsc_synced_days m
                             where m.site_id = ${siteId} and m.date = to_char(date '1970-01-01' + d, 'YYYY-MM-DD')) as marked
      from days where d is not null order by d`);
  return r.rows.map((row) => {
    const date = dayDate(Number(row.day));
    return { date, final: row.marked && isFinalDay(date, now) };
  });
}

/** findDataDays, synchronously on SQLite's reader (for SQLite-only callers). */
export function findDataDaysSqlite(db: SqliteDb, siteId: number, now: Date = new Date()): { date: string; final: boolean }[] {
  return db.raw.reader
    .query<{ day: number; marked: number }, [{ site_id: number }]>(DATA_DAYS_SQL)
    .all({ site_id: siteId })
    .map((r) => {
      const date = dayDate(r.day);
      return { date, final: r.marked === 1 && isFinalDay(date, now) };
    });
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

/** A site's clicks, impressions and stored detail rows per day (every search type) between two days, oldest first. */
export async function findDailyTotals(db: Db, siteId: number, start: string, end: string) {
  const x = db.t.gscQueryDetail;
  const rows = await db.q
    .select({
      day: x.day,
      clicks: sql<number>`sum(${x.clicks})`.mapWith(Number),
      impressions: sql<number>`sum(${x.impressions})`.mapWith(Number),
      rows: count(),
    })
    .from(x)
    .where(and(eq(x.site_id, siteId), between(x.day, dayNumber(start), dayNumber(end))))
    .groupBy(x.day)
    .orderBy(x.day);
  return rows.map(({ day, ...r }) => ({ date: dayDate(day), ...r }));
}
