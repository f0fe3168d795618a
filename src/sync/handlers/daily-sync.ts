import type { Orm } from "../../db/index.ts";
import type { Site } from "../../db/model.ts";
import { rowsIngested } from "../../metrics/registry.ts";
import { indexAllPendingQueries } from "../../search/queries.ts";
import { deleteRowsById, findDayRowKeys, findSyncedDays, markDaySynced, upsertRows, type DayRowKey } from "../data.ts";
import { isFinalDay } from "../dates.ts";
import { searchTypes, type SearchType } from "../source.ts";
import { runDays } from "./days.ts";
import type { TaskContext, TaskHandler } from "./index.ts";

/**
 * daily_sync: for each day of the task's range and each search type, fetches the search-analytics
 * rows (page, query, device) and stores them in short batched writes. `skip` leaves days already
 * synced alone; `overwrite` fetches them again and replaces their rows. A day that fails is counted and the others go on; the task
 * then fails (and is retried) with the last error. Progress is recorded after every day.
 */
export const dailySync: TaskHandler = {
  type: "daily_sync",
  async run(ctx) {
    const { task } = ctx;
    // Markers this job wrote in an earlier attempt (it was re-queued after a crash): done, not redone.
    // started_at is set by the first claim and kept across attempts.
    const firstStart = task.started_at!;
    let markers: Awaited<ReturnType<typeof findSyncedDays>> | null = null;
    await runDays(ctx, async ({ site, mode, day, days }) => {
      markers ??= await findSyncedDays(ctx.db, site.id, days[0]!, days[days.length - 1]!);
      let skippedTypes = 0;
      let records = 0;
      for (const type of searchTypes) {
        const marker = markers.get(`${day}|${type}`);
        if (marker && marker.synced_at >= firstStart) {
          records += marker.row_count;
        } else if (marker && mode === "skip") {
          skippedTypes++;
        } else {
          records += await syncDay(ctx, site, day, type);
        }
      }
      return { skipped: skippedTypes === searchTypes.length, records };
    });
  },
};

/** Rows read per look for stale rows (a read: no write lock is held meanwhile). */
const SCAN_CHUNK = 5000;

/**
 * Fetches and stores one day and search type; returns the rows stored. New rows are upserted first;
 * only once every page is stored are the day's rows this pass did not write (gone from the source)
 * deleted, in short writes. So a fetch failing half-way leaves the old rows in place (some updated),
 * never a day with rows missing. The day is then marked synced, if it is final (isFinalDay).
 */
async function syncDay(ctx: TaskContext, site: Site, day: string, type: SearchType): Promise<number> {
  const written = new Set<number>();
  for await (const page of ctx.source.pages(site.domain, day, type, ctx.signal)) {
    for (let i = 0; i < page.length; i += ctx.batchSize) {
      const batch = page.slice(i, i + ctx.batchSize);
      const ids = await ctx.write((tx) => upsertRows(tx, site.id, day, type, batch));
      rowsIngested.inc({ source: ctx.source.name }, ids.length);
      for (const id of ids) written.add(id);
    }
  }
  await deleteUnwritten(ctx, site.id, day, type, written);
  // SQLite: the day's new queries go into the FTS5 search index in a few batched writes, not one FTS
  // write per row. (PostgreSQL's trigram index on gsc_queries is kept by the server itself.)
  if (ctx.db.engine === "sqlite") await indexAllPendingQueries((fn) => ctx.write((tx) => fn(tx as unknown as Orm)));
  // A recent day is stored but not marked: its data may still change, so the next run fetches it again.
  if (isFinalDay(day)) await ctx.write((tx) => markDaySynced(tx, site.id, day, type, written.size));
  return written.size;
}

/** Deletes the rows of one site, day and search type whose id is not in `written`, in short writes. */
async function deleteUnwritten(ctx: TaskContext, siteId: number, day: string, type: SearchType, written: Set<number>) {
  let after: DayRowKey | null = null;
  const stale: number[] = [];
  for (;;) {
    ctx.signal.throwIfAborted();
    const rows = await findDayRowKeys(ctx.db, siteId, day, type, after, SCAN_CHUNK);
    for (const r of rows) if (!written.has(r.id)) stale.push(r.id);
    const last = rows.length < SCAN_CHUNK;
    while (stale.length >= ctx.batchSize || (last && stale.length > 0)) {
      const chunk = stale.splice(0, ctx.batchSize);
      await ctx.write((tx) => deleteRowsById(tx, chunk));
    }
    if (last) return;
    after = rows[rows.length - 1]!;
  }
}
