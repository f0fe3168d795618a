import { z } from "zod";
import type { Site } from "../../db/model.ts";
import { log } from "../../log.ts";
import { findSiteById } from "../../sites/queries.ts";
import { dayRange } from "../dates.ts";
import { isDayFailure, PermanentError } from "../errors.ts";
import type { Progress, TaskContext } from "./index.ts";

export const syncModes = ["skip", "overwrite"] as const;
export type SyncMode = (typeof syncModes)[number];

/** Which end of the range a task starts from (a backfill: newest first, so recent data arrives first). */
export const dayOrders = ["oldest_first", "newest_first"] as const;

const ParamsSchema = z.object({ sync_mode: z.enum(syncModes).default("skip"), order: z.enum(dayOrders).default("oldest_first") });

/** What one day's work reports: whether it was skipped, and how many rows it stored (or found stored). */
export type DayOutcome = { skipped: boolean; records: number };

/** Days after the current one given to perDay (`later`, in run order): enough to look ahead. */
const MAX_LATER = 64;

/**
 * Runs a task that works day by day over its range: checks its params and site, calls `perDay` for
 * each day (oldest first, or newest first with `order: newest_first`; `later`: the next days in that order) and records progress after every day. A day that fails is counted and the
 * others go on; the task then fails (and is retried) with the last error. Cancels, lost leases,
 * shutdown and PermanentErrors stop it at once.
 */
export async function runDays(
  ctx: TaskContext,
  perDay: (env: { site: Site; mode: SyncMode; day: string; days: string[]; later: string[] }) => Promise<DayOutcome>,
): Promise<void> {
  const { task } = ctx;
  const params = ParamsSchema.safeParse(task.params);
  if (!params.success) throw new PermanentError(`invalid params: ${params.error.issues[0]?.message}`);
  if (!task.start_date || !task.end_date) throw new PermanentError(`a ${task.task_type} needs start_date and end_date`);
  const site = await findSiteById(ctx.db, task.site_id);
  if (!site) throw new PermanentError(`site ${task.site_id} no longer exists`);

  const days = dayRange(task.start_date, task.end_date);
  const p: Progress = { done: 0, synced: 0, failed: 0, skipped: 0, records: 0 };
  let lastError: unknown = null;
  // `days` stays oldest first for perDay (it reads its markers over days[0]..days[n-1]).
  const order = params.data.order === "newest_first" ? [...days].reverse() : days;
  for (const [i, day] of order.entries()) {
    ctx.signal.throwIfAborted();
    try {
      const out = await perDay({ site, mode: params.data.sync_mode, day, days, later: order.slice(i + 1, i + 1 + MAX_LATER) });
      p.records += out.records;
      if (out.skipped) p.skipped++;
      else p.synced++;
    } catch (err) {
      if (!isDayFailure(err, ctx.signal)) throw err;
      p.failed++;
      lastError = err;
      log("warn", `${task.task_type} day failed`, { task_id: task.id, site_id: site.id, day, error: String(err) });
    }
    p.done++;
    await ctx.progress(p);
  }
  if (p.failed > 0) {
    throw new Error(`${p.failed} of ${days.length} days failed; last error: ${(lastError as Error)?.message ?? lastError}`);
  }
}
