import { and, between, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db, Orm, Q, Tables } from "../db/index.ts";
import { sqliteOrm } from "../db/sql.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import * as sqliteSchema from "../db/sqlite/schema.ts";
import { dayDate, dayNumber } from "./grains.ts";
import { moveDayPageWeek } from "./rollups.ts";
import { pgSchema } from "../db/pg/driver.ts";

// The writes (and the few reads sync needs) of Search Console's grains (docs/design/grains.md):
// property, page and search-appearance totals, the completeness of each (site, day, type), and the
// corrections log. Each day and search type is replaced in one transaction (replaceDayGrains), so a
// reader sees a day's totals from one fetch, never half of two.

/** Rows per multi-row INSERT (9 columns: well under both engines' bound-parameter limits). */
const ROWS_PER_STATEMENT = 1000;

/** The engine's tables behind a write-transaction handle (SQLite's or PostgreSQL's). */
function tablesOf(tx: Q): Tables {
  return (sqliteOrm(tx) ? sqliteSchema : pgSchema()) as unknown as Tables;
}

/** Clicks, impressions and sum_position (position × impressions × scale) of one grain row. */
export type Measures = { clicks: number; impressions: number; sum_position: number };
export type PropertyTotal = Measures & { country: string; device: number };
export type PageTotal = Measures & { page_id: number; country: string; device: number };
export type AppearanceTotal = Measures & { appearance: string };

/** What one fetch of a (site, day, type) found: rows per grain, truncation, anonymized share, data state. */
export type Completeness = {
  property_rows: number;
  page_rows: number;
  detail_rows: number;
  appearance_rows: number;
  page_truncated: boolean;
  detail_truncated: boolean;
  anonymized_share: number | null;
  data_state: "final" | "provisional";
};

/** One day and search type at every totals grain, as fetched (day: day number; type: type code). */
export type DayGrains = {
  siteId: number;
  day: number;
  type: number;
  property: PropertyTotal[];
  page: PageTotal[];
  appearance: AppearanceTotal[];
  completeness: Completeness;
};

/** A day's property totals summed: what the corrections log compares. */
export type DayTotals = Measures;

/**
 * Inside a write: the ids of a site's page URLs in gsc_pages, adding those not there yet (up to a few
 * thousand per call; the caller batches). Returns page → id.
 */
export async function upsertPageIds(tx: Q, siteId: number, pages: string[]): Promise<Map<string, number>> {
  const t = tablesOf(tx).gscPages;
  const unique = [...new Set(pages)];
  const ids = new Map<string, number>();
  for (let i = 0; i < unique.length; i += ROWS_PER_STATEMENT) {
    const chunk = unique.slice(i, i + ROWS_PER_STATEMENT);
    await tx
      .insert(t)
      .values(chunk.map((page) => ({ site_id: siteId, page })))
      .onConflictDoNothing({ target: [t.site_id, t.page] });
    const rows = await tx
      .select({ id: t.id, page: t.page })
      .from(t)
      .where(and(eq(t.site_id, siteId), inArray(t.page, chunk)));
    for (const r of rows) ids.set(r.page, r.id);
  }
  return ids;
}

/** Rows with the same key summed (Google's keys are unique, but e.g. an unknown device code could fold two). */
function mergeByKey<T extends Measures>(rows: T[], key: (r: T) => string): T[] {
  const out = new Map<string, T>();
  for (const r of rows) {
    const k = key(r);
    const g = out.get(k);
    if (!g) out.set(k, { ...r });
    else {
      g.clicks += r.clicks;
      g.impressions += r.impressions;
      g.sum_position += r.sum_position;
    }
  }
  return [...out.values()];
}

/** Inserts rows in multi-row statements. */
async function insertChunked(tx: Q, table: Parameters<Q["insert"]>[0], rows: Record<string, unknown>[]) {
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) await tx.insert(table).values(rows.slice(i, i + ROWS_PER_STATEMENT) as never);
}

const pageTotalStatements = perConnection((orm) => {
  const c = (orm as Orm & { $client: import("bun:sqlite").Database }).$client;
  return {
    // The day's rows whose key is not among the new day's (a JSON array of [page_id, country, device]).
    deleteGone: c.prepare<unknown, [number, number, number, string]>(
      `delete from gsc_page_totals where site_id = ? and day = ? and type = ?
         and (page_id, country, device) not in (select value ->> 0, value ->> 1, value ->> 2 from json_each(?))`,
    ),
    upsert: c.prepare<unknown, (number | string)[]>(
      `insert into gsc_page_totals (site_id, day, type, page_id, country, device, clicks, impressions, sum_position)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (site_id, day, type, page_id, country, device)
       do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
       where gsc_page_totals.clicks <> excluded.clicks or gsc_page_totals.impressions <> excluded.impressions
          or gsc_page_totals.sum_position <> excluded.sum_position`,
    ),
  };
});

/** A PostgreSQL array literal of texts (each element quoted). */
const pgTextArray = (values: string[]) => `{${values.map((v) => `"${v.replace(/[\\"]/g, "\\$&")}"`).join(",")}}`;

/**
 * Inside a write: makes `rows` (keys unique) the day's page totals: rows not among them deleted, new and
 * changed ones written, equal ones left alone, in a few statements (Google's up to 50,000 page rows a day
 * went through Drizzle's multi-row inserts: 8-14 s inside the switch on PostgreSQL, 2-5 s on SQLite, load ~11-19).
 */
async function replacePageTotals(tx: Q, siteId: number, day: number, type: number, rows: PageTotal[]): Promise<void> {
  const orm = sqliteOrm(tx);
  if (orm) {
    const { deleteGone, upsert } = pageTotalStatements(orm);
    deleteGone.run(siteId, day, type, JSON.stringify(rows.map((r) => [r.page_id, r.country, r.device])));
    for (const r of rows) upsert.run(siteId, day, type, r.page_id, r.country, r.device, r.clicks, r.impressions, r.sum_position);
    return;
  }
  // PostgreSQL: the new day as column arrays (text literals: one parameter each, no per-element binding).
  const ints = (f: (r: PageTotal) => number) => `{${rows.map(f).join(",")}}`;
  const [p, dv, c, im, sp] = [
    (r: PageTotal) => r.page_id,
    (r: PageTotal) => r.device,
    (r: PageTotal) => r.clicks,
    (r: PageTotal) => r.impressions,
    (r: PageTotal) => r.sum_position,
  ].map(ints);
  const co = pgTextArray(rows.map((r) => r.country));
  // NOT IN, not NOT EXISTS: a hashed subplan over the new keys whatever the planner believes of the day's
  // stored rows (right after a write their estimate is 1 row: NOT EXISTS then became a nested loop over
  // 50,000 × 50,000 keys and hit the statement timeout).
  await tx.execute(sql`delete from gsc_page_totals where site_id = ${siteId} and day = ${day} and type = ${type}
    and (page_id, country, device) not in (select * from unnest(${p}::int[], ${co}::text[], ${dv}::int[]))`);
  await tx.execute(sql`insert into gsc_page_totals (site_id, day, type, page_id, country, device, clicks, impressions, sum_position)
    select ${siteId}::int, ${day}::int, ${type}::int, u.*
      from unnest(${p}::int[], ${co}::text[], ${dv}::int[], ${c}::int[], ${im}::int[], ${sp}::bigint[]) as u
    on conflict (site_id, day, type, page_id, country, device)
    do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
    where gsc_page_totals.clicks <> excluded.clicks or gsc_page_totals.impressions <> excluded.impressions
       or gsc_page_totals.sum_position <> excluded.sum_position`);
}

/** Sums of measures in SQL, as numbers on both engines. */
const sums = (t: { clicks: unknown; impressions: unknown; sum_position: unknown }) => ({
  clicks: sql<number>`coalesce(sum(${t.clicks}), 0)`.mapWith(Number),
  impressions: sql<number>`coalesce(sum(${t.impressions}), 0)`.mapWith(Number),
  sum_position: sql<number>`coalesce(sum(${t.sum_position}), 0)`.mapWith(Number),
});

/** The property totals of one stored day and type, summed over country and device. */
async function sumPropertyTotals(q: Q, t: Tables, siteId: number, day: number, type: number): Promise<DayTotals> {
  const p = t.gscPropertyTotals;
  const [row] = await q
    .select(sums(p))
    .from(p)
    .where(and(eq(p.site_id, siteId), eq(p.day, day), eq(p.type, type)));
  return row ?? { clicks: 0, impressions: 0, sum_position: 0 };
}

/**
 * Inside a write: replaces one (site, day, type) at the property, page and appearance grains and
 * records its completeness, all in the caller's transaction. When the day had been stored as final
 * before and its property totals changed, the change goes into gsc_corrections (old and new); returns
 * that correction, else null.
 */
export async function replaceDayGrains(tx: Q, g: DayGrains): Promise<{ old: DayTotals; new: DayTotals } | null> {
  const t = tablesOf(tx);
  const { siteId: site_id, day, type } = g;
  const c = t.gscDayCompleteness;
  const [before] = await tx
    .select({ data_state: c.data_state, derived: c.derived })
    .from(c)
    .where(and(eq(c.site_id, site_id), eq(c.day, day), eq(c.type, type)));
  const old = before ? await sumPropertyTotals(tx, t, site_id, day, type) : null;

  for (const table of [t.gscPropertyTotals, t.gscAppearanceTotals]) {
    await tx.delete(table).where(and(eq(table.site_id, site_id), eq(table.day, day), eq(table.type, type)));
  }
  const property = mergeByKey(g.property, (r) => `${r.country}|${r.device}`);
  const page = mergeByKey(g.page, (r) => `${r.page_id}|${r.country}|${r.device}`);
  const appearance = mergeByKey(g.appearance, (r) => r.appearance);
  await insertChunked(
    tx,
    t.gscPropertyTotals,
    property.map((r) => ({ site_id, day, type, ...r })),
  );
  // The weekly page rollup follows the day: its old rows out, the new ones in (src/sync/rollups.ts).
  await moveDayPageWeek(tx, site_id, day, type, -1);
  await replacePageTotals(tx, site_id, day, type, page);
  await moveDayPageWeek(tx, site_id, day, type, 1);
  await insertChunked(
    tx,
    t.gscAppearanceTotals,
    appearance.map((r) => ({ site_id, day, type, ...r })),
  );
  const fetched_at = new Date().toISOString();
  const values = { ...g.completeness, derived: false, fetched_at };
  await tx
    .insert(c)
    .values({ site_id, day, type, ...values })
    .onConflictDoUpdate({ target: [c.site_id, c.day, c.type], set: values });

  const now: DayTotals = {
    clicks: property.reduce((s, r) => s + r.clicks, 0),
    impressions: property.reduce((s, r) => s + r.impressions, 0),
    sum_position: property.reduce((s, r) => s + r.sum_position, 0),
  };
  // A correction is Google revising a day it had called final; provisional days change by design, and
  // totals derived from the old detail (migration) were never Google's totals.
  if (!old || before!.data_state !== "final" || before!.derived) return null;
  if (old.clicks === now.clicks && old.impressions === now.impressions && old.sum_position === now.sum_position) return null;
  await tx.insert(t.gscCorrections).values({
    site_id,
    day,
    type,
    old_clicks: old.clicks,
    old_impressions: old.impressions,
    old_sum_position: old.sum_position,
    new_clicks: now.clicks,
    new_impressions: now.impressions,
    new_sum_position: now.sum_position,
    detected_at: fetched_at,
  });
  return { old, new: now };
}

/** Completeness rows of a site between two dates (both included), keyed `YYYY-MM-DD|typeCode`. */
export async function findCompleteness(db: Db, siteId: number, start: string, end: string) {
  const c = db.t.gscDayCompleteness;
  const rows = await db.q
    .select()
    .from(c)
    .where(and(eq(c.site_id, siteId), between(c.day, dayNumber(start), dayNumber(end))));
  return new Map(rows.map((r) => [`${dayDate(r.day)}|${r.type}`, r]));
}

/** A stored day's property totals (summed over country and device) for one search type code. */
export async function findDayTotals(db: Db, siteId: number, date: string, type: number): Promise<DayTotals> {
  return sumPropertyTotals(db.q, db.t, siteId, dayNumber(date), type);
}

/**
 * A site's completeness summary for /sync/status: how many (day, type) pairs were fetched at their
 * grains, how many are final, provisional, derived, or had their detail cut at Google's daily row cap,
 * and the newest fetch.
 */
export async function completenessSummary(db: Db, siteId: number) {
  const c = db.t.gscDayCompleteness;
  const [row] = await db.q
    .select({
      day_types: sql<number>`count(*)`.mapWith(Number),
      days: sql<number>`count(distinct ${c.day})`.mapWith(Number),
      provisional: sql<number>`coalesce(sum(case when ${c.data_state} = 'provisional' then 1 else 0 end), 0)`.mapWith(Number),
      derived: sql<number>`coalesce(sum(case when ${c.derived} then 1 else 0 end), 0)`.mapWith(Number),
      detail_truncated: sql<number>`coalesce(sum(case when ${c.detail_truncated} then 1 else 0 end), 0)`.mapWith(Number),
      page_truncated: sql<number>`coalesce(sum(case when ${c.page_truncated} then 1 else 0 end), 0)`.mapWith(Number),
      last_fetched_at: sql<string | null>`max(${c.fetched_at})`,
    })
    .from(c)
    .where(eq(c.site_id, siteId));
  return row!;
}

/** The newest completeness rows of a site (newest day first, then type), at most `limit`. */
export async function listRecentCompleteness(db: Db, siteId: number, limit: number) {
  const c = db.t.gscDayCompleteness;
  return db.q.select().from(c).where(eq(c.site_id, siteId)).orderBy(desc(c.day), c.type).limit(limit);
}

/** A site's corrections, newest first, optionally only ids below `before` (keyset paging), at most `limit`. */
export async function listCorrections(db: Db, siteId: number, opts: { limit: number; before?: number }) {
  const k = db.t.gscCorrections;
  const where = opts.before === undefined ? eq(k.site_id, siteId) : and(eq(k.site_id, siteId), lt(k.id, opts.before));
  return db.q.select().from(k).where(where).orderBy(desc(k.id)).limit(opts.limit);
}
