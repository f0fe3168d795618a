import { and, eq, sql } from "drizzle-orm";
import { deviceCode, sumPosition } from "../../sync/grains.ts";
import { keyRows, rollupOf } from "../../sync/keyed-rows.ts";
import type { SourceRow } from "../../sync/source.ts";
import { eitherIds, type KnownTextIds, type TextIds, unknownTexts } from "../../sync/text-ids.ts";
import type { Q } from "../engine.ts";
import type { GscRow, HourlyRow } from "../sqlite/schema.ts";
import { fromExcluded } from "../sql.ts";
import { gscDayQueryTotals as dq, gscQueryDetail as d, gscPages, gscQueries, hourlyRankings as h } from "./schema.ts";

// The synced rows' writes on PostgreSQL: multi-row statements of at most ROWS_PER_STATEMENT rows (one round
// trip each, instead of SQLite's prepared statement per row). The query detail is the compact
// gsc_query_detail with the gsc_pages / gsc_queries dictionaries (src/sync/data.ts, docs/design/grains.md).

const ROWS_PER_STATEMENT = 1000;

/** Detail rows per upsert of column arrays (UNNEST): a few hundred KB of parameters. */
const UNNEST_ROWS = 20_000;

type DailyRow = Pick<GscRow, "page" | "query" | "device" | "clicks" | "impressions" | "position">;
type HourlyInsert = Omit<HourlyRow, "id">;

/** Inside a transaction: the page and query ids of `rows`' texts, added to the site's dictionaries where new. */
export async function rowTextIdsPg(
  tx: Q,
  siteId: number,
  rows: { page: string; query: string }[],
  known?: KnownTextIds,
): Promise<{ pages: TextIds; queries: TextIds }> {
  // Texts in `known` (ids the task saw committed) are not looked up; the rest go to known.resolved.
  const pages = await dictionaryIds(tx, gscPages, siteId, unknownTexts(rows, "page", known?.pages));
  const queries = await dictionaryIds(tx, gscQueries, siteId, unknownTexts(rows, "query", known?.queries));
  known?.resolved(pages, queries);
  return { pages: eitherIds(known?.pages, pages), queries: eitherIds(known?.queries, queries) };
}

/**
 * Dictionary ids of a site's texts (pages or queries), adding the missing ones. Each step is one statement
 * with the texts as one array parameter (no statement of thousands of parameters, no Drizzle row building).
 * The missing texts are inserted in sorted order, so two writers adding the same new texts wait on each
 * other instead of deadlocking; their ids are read in a later statement, which sees what a concurrent
 * writer committed meanwhile.
 */
export async function dictionaryIds(tx: Q, table: typeof gscPages | typeof gscQueries, siteId: number, texts: string[]) {
  const name = sql.raw(table === gscPages ? "gsc_pages" : "gsc_queries");
  const col = sql.raw(table === gscPages ? "page" : "query");
  const distinct = [...new Set(texts)].sort();
  const ids = new Map<string, number>();
  if (distinct.length === 0) return ids;
  // gsc_queries also has the pg_trgm GIN index of query search, and pg_trgm serves `=` too. Once an
  // ANALYZE (autovacuum's) has seen the table small while a day's new queries keep filling the index's
  // pending list, the planner prices `query = any(texts)` on that GIN index as cheap: a bitmap scan
  // per text over the whole pending list, measured 13-30 s a statement (shared 2-core machine at load ~15; statement
  // timeouts, a 50,000-row day stuck for minutes) instead of milliseconds. GIN is read only through
  // bitmap scans: without them the lookup takes the unique (site_id, query) btree or a seq scan, for this
  // transaction's lookups only (test/sync.rows.plan.test.ts).
  const noGin = table === gscQueries;
  if (noGin) await tx.execute(sql`set local enable_bitmapscan = off`);
  // Most texts of a day are already known: look first, add only the missing ones.
  const find = async (wanted: string[]) => {
    const r = await tx.execute<{ id: number; text: string }>(
      sql`select id, ${col} as text from ${name} where site_id = ${siteId} and ${col} = any(${sql.param(wanted)}::text[])`,
    );
    for (const row of r.rows) ids.set(row.text, Number(row.id));
  };
  await find(distinct);
  const missing = distinct.filter((t) => !ids.has(t));
  if (missing.length > 0) {
    await tx.execute(
      sql`insert into ${name} (site_id, ${col}) select ${siteId}, t from unnest(${sql.param(missing)}::text[]) with ordinality as u(t, o) order by o on conflict do nothing`,
    );
    await find(missing);
  }
  if (noGin) await tx.execute(sql`set local enable_bitmapscan to default`);
  return ids;
}

/**
 * Inside a transaction: stores detail rows of one site, day and type (insert, or update on the row key);
 * returns each input row's key id ("site|day|type|page_id|query_id|device"), in input order. A key given
 * twice keeps the last row, as on SQLite (one statement cannot update the same row twice on PostgreSQL).
 */
export async function upsertRowsPg(tx: Q, siteId: number, day: number, type: number, rows: DailyRow[]): Promise<string[]> {
  const { pages, queries } = await rowTextIdsPg(tx, siteId, rows);
  const keys: string[] = new Array(rows.length);
  // The last row of each key (one statement cannot update the same row twice on PostgreSQL), as columns.
  const last = new Map<string, number>();
  const prefix = `${siteId}|${day}|${type}|`;
  const pageIds: number[] = new Array(rows.length);
  const queryIds: number[] = new Array(rows.length);
  const devices: number[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    pageIds[i] = pages.get(r.page)!;
    queryIds[i] = queries.get(r.query)!;
    devices[i] = deviceCode(r.device);
    const key = `${prefix}${pageIds[i]}|${queryIds[i]}|${devices[i]}`;
    keys[i] = key;
    last.set(key, i);
  }
  const cols: number[][] = [[], [], [], [], [], []];
  for (const i of last.values()) {
    const r = rows[i]!;
    cols[0]!.push(pageIds[i]!);
    cols[1]!.push(queryIds[i]!);
    cols[2]!.push(devices[i]!);
    cols[3]!.push(r.clicks);
    cols[4]!.push(r.impressions);
    cols[5]!.push(sumPosition(r.position, r.impressions));
  }
  // One statement per UNNEST_ROWS rows: each column one array parameter (an integer array literal), not 9 parameters a row.
  const n = cols[0]!.length;
  for (let i = 0; i < n; i += UNNEST_ROWS) {
    const [p, q, dv, c, im, sp] = cols.map((col) => `{${col.slice(i, i + UNNEST_ROWS).join(",")}}`);
    await tx.execute(sql`insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
      select ${siteId}::int, ${day}::int, ${type}::int, u.* from unnest(${p}::int[], ${q}::int[], ${dv}::int[], ${c}::int[], ${im}::int[], ${sp}::bigint[]) as u
      on conflict (site_id, day, type, page_id, query_id, device)
      do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position`);
  }
  return keys;
}

/** An integer array literal of column values (one parameter for a whole column). */
const intArray = (col: number[], from: number, to: number) => `{${col.slice(from, to).join(",")}}`;

/**
 * Inside a transaction: replaces the whole query detail of one site, day and type with `rows` (deleted,
 * then inserted once per key in key order, the last row of a key winning) and its day × query rollup
 * with their sums computed in JS, each written as column arrays (UNNEST); returns the detail rows stored.
 * A day stored before (a provisional day fetched again) keeps its rollup rows whose sums did not change:
 * only the rows of queries gone from it are deleted and the new or changed ones written, so the newest-day
 * triggers (migrations 0023, 0025) see only those instead of the whole day deleted and added again.
 */
export async function replaceDayDetailPg(
  tx: Q,
  siteId: number,
  day: number,
  type: number,
  rows: SourceRow[],
  known?: KnownTextIds,
): Promise<number> {
  const { pages, queries } = await rowTextIdsPg(tx, siteId, rows, known);
  const k = keyRows(rows, pages, queries);
  const stored = (await tx.delete(d).where(and(eq(d.site_id, siteId), eq(d.day, day), eq(d.type, type)))).rowCount ?? 0;
  for (let i = 0; i < k.n; i += UNNEST_ROWS) {
    const j = i + UNNEST_ROWS;
    await tx.execute(sql`insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
      select ${siteId}::int, ${day}::int, ${type}::int, u.* from unnest(${intArray(k.page, i, j)}::int[], ${intArray(k.query, i, j)}::int[],
        ${intArray(k.device, i, j)}::int[], ${intArray(k.clicks, i, j)}::int[], ${intArray(k.impressions, i, j)}::int[],
        ${intArray(k.sumPosition, i, j)}::bigint[]) as u`);
  }
  const r = rollupOf(k);
  // A day without stored detail has no rollup rows either (they are written together): plain inserts.
  if (stored === 0) await tx.delete(dq).where(and(eq(dq.site_id, siteId), eq(dq.day, day), eq(dq.type, type)));
  else {
    await tx.execute(sql`delete from gsc_day_query_totals where site_id = ${siteId} and day = ${day} and type = ${type}
      and query_id not in (select unnest(${intArray(r.query, 0, r.query.length)}::int[]))`);
  }
  const upsert =
    stored === 0
      ? sql``
      : sql` on conflict (site_id, query_id, day, type)
      do update set clicks = excluded.clicks, impressions = excluded.impressions, sum_position = excluded.sum_position
      where gsc_day_query_totals.clicks <> excluded.clicks or gsc_day_query_totals.impressions <> excluded.impressions
         or gsc_day_query_totals.sum_position <> excluded.sum_position`;
  for (let i = 0; i < r.query.length; i += UNNEST_ROWS) {
    const j = i + UNNEST_ROWS;
    await tx.execute(sql`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
      select ${siteId}::int, ${day}::int, ${type}::int, u.* from unnest(${intArray(r.query, i, j)}::int[], ${intArray(r.clicks, i, j)}::bigint[],
        ${intArray(r.impressions, i, j)}::bigint[], ${intArray(r.sumPosition, i, j)}::bigint[]) as u${upsert}`);
  }
  return k.n;
}

/** Inside a transaction: deletes detail rows by key ([site, day, type, page_id, query_id, device] each); returns how many. */
export async function deleteRowsPg(tx: Q, keys: number[][]): Promise<number> {
  let n = 0;
  for (let i = 0; i < keys.length; i += ROWS_PER_STATEMENT) {
    const tuples = keys.slice(i, i + ROWS_PER_STATEMENT).map(
      (k) =>
        sql`(${sql.join(
          k.map((v) => sql`${v}::int`),
          sql`, `,
        )})`,
    );
    const r = await tx.execute(
      sql`delete from gsc_query_detail where (site_id, day, type, page_id, query_id, device) in (${sql.join(tuples, sql`, `)})`,
    );
    n += r.rowCount ?? 0;
  }
  return n;
}

/** Inside a transaction: rebuilds gsc_day_query_totals of one site, day and type from the detail. */
export async function rebuildDayQueryTotalsPg(tx: Q, siteId: number, day: number, type: number): Promise<void> {
  await tx.delete(dq).where(and(eq(dq.site_id, siteId), eq(dq.day, day), eq(dq.type, type)));
  await tx.execute(sql`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
    select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position)
      from gsc_query_detail where site_id = ${siteId} and day = ${day} and type = ${type}
     group by site_id, day, type, query_id`);
}

/** Inside a transaction: stores hourly rows (insert, or update on the row key); a key given twice keeps the last row. */
export async function upsertHourlyRowsPg(tx: Q, rows: HourlyInsert[]): Promise<void> {
  const unique = new Map<string, HourlyInsert>();
  for (const r of rows) unique.set(`${r.site_id}\u0000${r.hour_timestamp}\u0000${r.query}\u0000${r.page}\u0000${r.device}`, r);
  const values = [...unique.values()];
  for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
    await tx
      .insert(h)
      .values(values.slice(i, i + ROWS_PER_STATEMENT))
      .onConflictDoUpdate({
        target: [h.site_id, h.hour_timestamp, h.query, h.page, h.device],
        set: fromExcluded("clicks", "impressions", "ctr", "position", "fetched_at"),
      });
  }
}
