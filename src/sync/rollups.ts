import { type SQL, sql } from "drizzle-orm";
import type { Q } from "../db/engine.ts";
import type { Orm } from "../db/sqlite/open.ts";
import { sqliteOrm } from "../db/sql.ts";
import { type DaySums, encodeDaySums } from "./day-sums.ts";

// Report grains kept at ingest (issue 18, docs/design/grains.md "Rollups kept at ingest"): the sync's day
// switch calls refreshDayRollups once the day's detail, its day × query rollup and its totals grains are
// stored, in the same transaction, so a reader sees the rollups of the day it sees. Each rollup is summed
// from the stored rows of that one day (never from what the sync fetched): the same numbers the detail gives.
// Weekly page totals (gsc_week_page_totals, week = floor(day / 7)) are kept by replaceDayGrains, the one writer
// of gsc_page_totals: the day's stored page totals are taken out of their week before the day is replaced and
// the new ones added after (moveDayPageWeek), so a re-fetched day never counts twice and no week is re-read.

/** Runs one statement inside the caller's write. */
async function run(tx: Q | Orm, query: SQL): Promise<void> {
  const orm = sqliteOrm(tx);
  if (orm) orm.run(query);
  else await (tx as Q).execute(query);
}

/**
 * Inside the day's write: recounts the named queries of one (site, day, type) in gsc_day_query_counts (device 0:
 * every device): the day's rollup rows (SQLite: a key range of its (site_id, type, day, query_id) key; PostgreSQL: of
 * its (site_id, day, type, query_id) index).
 * Counts under a device filter or over every type together are not kept (a distinct count per device cost
 * 6 µs a detail row in the switch, docs/benchmarks/ingest-export.md): those reads count the window's rows.
 * `named`: the day's distinct query ids when the caller wrote the whole day from memory and knows them (the
 * count of the detail it just stored; not read back: ~0.5 µs a detail row on SQLite).
 */
export async function refreshDayQueryCounts(tx: Q | Orm, siteId: number, day: number, type: number, named?: number): Promise<void> {
  // Integer parameters typed on both engines (PostgreSQL cannot infer a SELECT list's parameter types).
  const [s, d, t] = [siteId, day, type].map((v) => sql`cast(${v} as integer)`);
  // Rows of the first layout (per device, type 0) of this day go too: nothing reads or keeps them.
  await run(tx, sql`delete from gsc_day_query_counts where site_id = ${siteId} and day = ${day} and (type = ${type} or type = 0)`);
  if (named !== undefined) {
    if (named > 0)
      await run(tx, sql`insert into gsc_day_query_counts (site_id, day, type, device, queries) values (${s}, ${d}, ${t}, 0, ${named})`);
    return;
  }
  const counted = sql`count(*) from gsc_day_query_totals where site_id = ${siteId} and day = ${day} and type = ${type} having count(*) > 0`;
  await run(tx, sql`insert into gsc_day_query_counts (site_id, day, type, device, queries) select ${s}, ${d}, ${t}, 0, ${counted}`);
}

/**
 * Inside the day's write: replaces the (site, day, type) row of gsc_day_query_sums (the day's query sums packed,
 * src/sync/day-sums.ts) with `sums` (the day's rollup when the caller computed it from the rows it
 * stored) or else the sums of the day's stored detail per query. No row for a day without queries.
 */
export async function refreshDayQuerySums(tx: Q | Orm, siteId: number, day: number, type: number, sums?: DaySums): Promise<void> {
  const orm = sqliteOrm(tx);
  if (!sums) {
    const read = sql`select query_id, sum(clicks) as c, sum(impressions) as i, sum(sum_position) as s from gsc_query_detail
      where site_id = ${siteId} and day = ${day} and type = ${type} group by query_id order by query_id`;
    const rows = orm
      ? orm.values<[number, number, number, number]>(read)
      : ((await (tx as Q).execute(read)).rows as Record<string, unknown>[]).map((r) => Object.values(r).map(Number));
    sums = {
      query: rows.map((r) => r[0]!),
      clicks: rows.map((r) => r[1]!),
      impressions: rows.map((r) => r[2]!),
      sumPosition: rows.map((r) => r[3]!),
    };
  }
  await run(tx, sql`delete from gsc_day_query_sums where site_id = ${siteId} and day = ${day} and type = ${type}`);
  if (sums.query.length === 0) return;
  const data = encodeDaySums(sums);
  await run(
    tx,
    sql`insert into gsc_day_query_sums (site_id, day, type, queries, data) values (${siteId}, ${day}, ${type}, ${sums.query.length}, ${orm ? data : Buffer.from(data.buffer, data.byteOffset, data.length)})`,
  );
}

/**
 * Inside the day's switching transaction, after its detail, rollup and totals are stored: brings every
 * rollup kept at ingest up to date for that (site, day number, type code). `named`: as refreshDayQueryCounts;
 * `sums`: the day's rollup when the caller computed it from the rows it stored (else read from the detail).
 */
export async function refreshDayRollups(
  tx: Q | Orm,
  siteId: number,
  day: number,
  type: number,
  named?: number,
  sums?: DaySums,
): Promise<void> {
  await refreshDayQueryCounts(tx, siteId, day, type, named);
  await refreshDayQuerySums(tx, siteId, day, type, sums);
}

/** Days per week of the weekly rollups: week w holds days 7w .. 7w + 6 (Thursday to Wednesday; day 0 is 1970-01-01). */
export const DAYS_PER_WEEK = 7;

/** A day window's whole weeks (first..last week numbers) and the edge days before and after them; null without a whole week. */
export function splitWeeks(
  from: number,
  to: number,
): { first: number; last: number; head: [number, number]; tail: [number, number] } | null {
  const first = Math.ceil(from / DAYS_PER_WEEK);
  const last = Math.floor((to + 1) / DAYS_PER_WEEK) - 1;
  if (first > last) return null;
  return { first, last, head: [from, first * DAYS_PER_WEEK - 1], tail: [(last + 1) * DAYS_PER_WEEK, to] };
}

/**
 * Inside the write that replaces a day's page totals: adds (sign 1) or takes out (sign -1) that (site, day,
 * type)'s stored page totals, summed over countries and devices, to/from its week's rows of gsc_week_page_totals.
 * Called with -1 before the day's rows are replaced and 1 after: the week then holds the sum of its days.
 */
export async function moveDayPageWeek(tx: Q | Orm, siteId: number, day: number, type: number, sign: 1 | -1): Promise<void> {
  const [s, w, t, k] = [siteId, Math.floor(day / DAYS_PER_WEEK), type, sign].map((v) => sql`cast(${v} as integer)`);
  // The day's rows are read in key order (site_id, day, type, page_id, ...): grouped per page without a sort.
  await run(
    tx,
    sql`insert into gsc_week_page_totals (site_id, week, type, page_id, clicks, impressions, sum_position)
      select ${s}, ${w}, ${t}, x.page_id, ${k} * sum(x.clicks), ${k} * sum(x.impressions), ${k} * sum(x.sum_position)
        from gsc_page_totals x where x.site_id = ${siteId} and x.day = ${day} and x.type = ${type} group by x.page_id
      on conflict (site_id, week, type, page_id) do update set clicks = gsc_week_page_totals.clicks + excluded.clicks,
        impressions = gsc_week_page_totals.impressions + excluded.impressions,
        sum_position = gsc_week_page_totals.sum_position + excluded.sum_position`,
  );
}
