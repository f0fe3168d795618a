import { z } from "zod";
import type { Site } from "../../db/schema.ts";
import { log } from "../../log.ts";
import { rowsIngested } from "../../metrics/registry.ts";
import { findSiteById } from "../../sites/queries.ts";
import { deleteRowsById, findDayRowKeys, findSyncedDays, markDaySynced, upsertRows, type DayRowKey } from "../data.ts";
import { dayRange, isFinalDay } from "../dates.ts";
import { LeaseLost, PermanentError, TaskCancelled, WorkerStopping } from "../errors.ts";
import { searchTypes, type SearchType } from "../source.ts";
import type { Progress, TaskContext, TaskHandler } from "./index.ts";

export const syncModes = ["skip", "overwrite"] as const;
export type SyncMode = (typeof syncModes)[number];

const ParamsSchema = z.object({ sync_mode: z.enum(syncModes).default("skip") });

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
    const params = ParamsSchema.safeParse(task.params);
    if (!params.success) throw new PermanentError(`invalid params: ${params.error.issues[0]?.message}`);
    if (!task.start_date || !task.end_date) throw new PermanentError("a daily_sync needs start_date and end_date");
    const site = await findSiteById(ctx.db, task.site_id);
    if (!site) throw new PermanentError(`site ${task.site_id} no longer exists`);

    const mode = params.data.sync_mode;
    const days = dayRange(task.start_date, task.end_date);
    const markers = await findSyncedDays(ctx.db, site.id, task.start_date, task.end_date);
    // Markers this job wrote in an earlier attempt (it was re-queued after a crash): done, not redone.
    // started_at is set by the first claim and kept across attempts.
    const firstStart = task.started_at!;
    const p: Progress = { done: 0, synced: 0, failed: 0, skipped: 0, records: 0 };
    let lastError: unknown = null;

    for (const day of days) {
      ctx.signal.throwIfAborted();
      let skippedTypes = 0;
      try {
        for (const type of searchTypes) {
          const marker = markers.get(`${day}|${type}`);
          if (marker && marker.synced_at >= firstStart) {
            p.records += marker.row_count;
          } else if (marker && mode === "skip") {
            skippedTypes++;
          } else {
            p.records += await syncDay(ctx, site, day, type);
          }
        }
        if (skippedTypes === searchTypes.length) p.skipped++;
        else p.synced++;
      } catch (err) {
        if (!isDayFailure(err, ctx.signal)) throw err;
        p.failed++;
        lastError = err;
        log("warn", "daily_sync day failed", { task_id: task.id, site_id: site.id, day, error: String(err) });
      }
      p.done++;
      await ctx.progress(p);
    }
    if (p.failed > 0) {
      throw new Error(`${p.failed} of ${days.length} days failed; last error: ${(lastError as Error)?.message ?? lastError}`);
    }
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
    const rows = findDayRowKeys(ctx.db, siteId, day, type, after, SCAN_CHUNK);
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

/** True for an error that fails only this day (Search Console still failing after its retries). */
function isDayFailure(err: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return false;
  return !(err instanceof PermanentError || err instanceof TaskCancelled || err instanceof LeaseLost || err instanceof WorkerStopping);
}
