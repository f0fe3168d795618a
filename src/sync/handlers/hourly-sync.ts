import type { Site } from "../../db/model.ts";
import { rowsIngested } from "../../metrics/registry.ts";
import { addDays, dayOf } from "../dates.ts";
import { deleteStaleHourlyRows, findCompleteHourlyDays, upsertHourlyRows } from "../hourly-data.ts";
import { runDays } from "./days.ts";
import type { TaskContext, TaskHandler } from "./index.ts";

/**
 * hourly_sync: for each day of the task's range (Search Console keeps the last ~10 days), fetches the
 * hourly rows (dimensions HOUR, query, page, device; dataState HOURLY_ALL) and upserts them into
 * hourly_rankings in short batched writes, then deletes the day's rows this pass did not store (gone
 * from the source). `skip` leaves alone a day that is complete (it has hour 23) and at least two days
 * old, when Google no longer revises it; `overwrite` fetches every day again.
 */
export const hourlySync: TaskHandler = {
  type: "hourly_sync",
  async run(ctx) {
    let complete: Set<string> | null = null;
    await runDays(ctx, async ({ site, mode, day, days }) => {
      complete ??= await findCompleteHourlyDays(ctx.db, site.id, days[0]!, days[days.length - 1]!);
      if (mode === "skip" && complete.has(day) && day <= addDays(dayOf(new Date()), -2)) return { skipped: true, records: 0 };
      return { skipped: false, records: await syncHourlyDay(ctx, site, day) };
    });
  },
};

/**
 * Fetches and stores one day's hourly rows; returns how many. Rows are stamped with this pass's start,
 * and only once every page is stored are the day's older rows deleted: a fetch failing half-way leaves
 * the previous rows in place, never a day with hours missing.
 */
async function syncHourlyDay(ctx: TaskContext, site: Site, day: string): Promise<number> {
  const pass = new Date().toISOString();
  let stored = 0;
  for await (const page of ctx.source.hourlyPages(site.domain, day, ctx.signal)) {
    // ctx.batchSize changes with contention: read once per batch.
    for (let i = 0, batch: typeof page; i < page.length; i += batch.length) {
      batch = page.slice(i, i + ctx.batchSize);
      await ctx.write((tx) => upsertHourlyRows(tx, site.id, pass, batch));
      rowsIngested.inc({ source: ctx.source.name }, batch.length);
      stored += batch.length;
    }
  }
  while ((await ctx.write((tx) => deleteStaleHourlyRows(tx, site.id, day, pass, ctx.batchSize))) === ctx.batchSize) {
    ctx.signal.throwIfAborted();
  }
  return stored;
}
