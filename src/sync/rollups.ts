import { type SQL, sql } from "drizzle-orm";
import type { Q } from "../db/engine.ts";
import type { Orm } from "../db/sqlite/open.ts";
import { sqliteOrm } from "../db/sql.ts";

// Report grains kept at ingest (issue 18, docs/design/grains.md "Rollups kept at ingest"): the sync's day
// switch calls refreshDayRollups once the day's detail, its day × query rollup and its totals grains are
// stored, in the same transaction, so a reader sees the rollups of the day it sees. Each rollup is summed
// from the stored rows of that one day (never from what the sync fetched): the same numbers the detail gives.

/** Runs one statement inside the caller's write. */
async function run(tx: Q | Orm, query: SQL): Promise<void> {
  const orm = sqliteOrm(tx);
  if (orm) orm.run(query);
  else await (tx as Q).execute(query);
}

/**
 * Inside the day's write: recounts the named queries of one (site, day, type) in gsc_day_query_counts (device 0:
 * every device) from the day's stored day × query rollup: one key-range count, no re-read of the detail.
 * Counts under a device filter or over every type together are not kept (a distinct count per device cost
 * 6 µs a detail row in the switch, docs/benchmarks/ingest-export.md): those reads count the window's rows.
 */
export async function refreshDayQueryCounts(tx: Q | Orm, siteId: number, day: number, type: number): Promise<void> {
  // Integer parameters typed on both engines (PostgreSQL cannot infer a SELECT list's parameter types).
  const [s, d, t] = [siteId, day, type].map((v) => sql`cast(${v} as integer)`);
  // Rows of the first layout (per device, type 0) of this day go too: nothing reads or keeps them.
  await run(tx, sql`delete from gsc_day_query_counts where site_id = ${siteId} and day = ${day} and (type = ${type} or type = 0)`);
  await run(
    tx,
    sql`insert into gsc_day_query_counts (site_id, day, type, device, queries)
      select ${s}, ${d}, ${t}, 0, count(*) from gsc_day_query_totals
       where site_id = ${siteId} and day = ${day} and type = ${type} having count(*) > 0`,
  );
}

/**
 * Inside the day's switching transaction, after its detail, rollup and totals are stored: brings every
 * rollup kept at ingest up to date for that (site, day number, type code).
 */
export async function refreshDayRollups(tx: Q | Orm, siteId: number, day: number, type: number): Promise<void> {
  await refreshDayQueryCounts(tx, siteId, day, type);
}
