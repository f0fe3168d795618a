import { z } from "zod";
import type { Site } from "../../db/schema.ts";
import { log } from "../../log.ts";
import { findSiteById } from "../../sites/queries.ts";
import { deleteDayRows, findSyncedDays, markDaySynced, unmarkDay, upsertRows } from "../data.ts";
import { dayRange } from "../dates.ts";
import { LeaseLost, PermanentError, TaskCancelled, WorkerStopping } from "../errors.ts";
import { searchTypes, type SearchType } from "../source.ts";
import type { Progress, TaskContext, TaskHandler } from "./index.ts";

export const syncModes = ["skip", "overwrite"] as const;
export type SyncMode = (typeof syncModes)[number];

const ParamsSchema = z.object({ sync_mode: z.enum(syncModes).default("skip") });

/**
 * daily_sync: for each day of the task's range and each search type, fetches the search-analytics
 * rows (page, query, device) and stores them in short batched writes. `skip` leaves days already
 * synced alone; `overwrite` replaces them. A day that fails is counted and the others go on; the task
 * then fails (and is retried) with the last error. Progress is recorded after every day.
 */
export const dailySync: TaskHandler = {
  type: "daily_sync",
  description: "Search Console search analytics (page, query, device) per day and search type",
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
    const firstStart = task.started_at ?? new Date().toISOString();
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
            p.records += await syncDay(ctx, site, day, type, mode === "overwrite");
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

/**
 * Fetches and stores one day and search type; returns the rows stored. With `replace`, the old rows
 * are deleted in short writes right before the first new ones are written (not before the fetch
 * succeeded). The day is marked synced only after its last row is stored.
 */
async function syncDay(ctx: TaskContext, site: Site, day: string, type: SearchType, replace: boolean): Promise<number> {
  let cleared = !replace;
  const clear = async () => {
    let first = true;
    for (;;) {
      const deleted = await ctx.write((tx) => {
        if (first) unmarkDay(tx, site.id, day, type);
        return deleteDayRows(tx, site.id, day, type, ctx.batchSize);
      });
      first = false;
      if (deleted < ctx.batchSize) break;
    }
    cleared = true;
  };

  let stored = 0;
  for await (const page of ctx.source.pages(site.domain, day, type, ctx.signal)) {
    if (!cleared) await clear();
    for (let i = 0; i < page.length; i += ctx.batchSize) {
      const batch = page.slice(i, i + ctx.batchSize);
      await ctx.write((tx) => upsertRows(tx, site.id, day, type, batch));
      stored += batch.length;
    }
  }
  if (!cleared) await clear();
  await ctx.write((tx) => markDaySynced(tx, site.id, day, type, stored));
  return stored;
}

/** True for an error that fails only this day (Search Console still failing after its retries). */
function isDayFailure(err: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return false;
  return !(err instanceof PermanentError || err instanceof TaskCancelled || err instanceof LeaseLost || err instanceof WorkerStopping);
}
