import { ApiError } from "../errors.ts";
import { addDays, dayOf, daysBetween, HOURLY_RETENTION_DAYS, isDate, MAX_RANGE_DAYS, newestDataDay, RETENTION_DAYS } from "./dates.ts";

// A task's range of days, checked against what Search Console keeps. Apart from src/sync/schemas.ts (the API's zod
// schemas) because the sync worker's scheduler needs it and not the OpenAPI layer (@hono/zod-openapi, hono).

/** Which days a task type may cover, relative to today (UTC). */
export type RangeWindow = {
  /** The newest day with data; also the default end. */
  newest: (now: Date) => string;
  /** How many days before `newest` the oldest allowed start is, and what that limit is called. */
  retentionDays: number;
  retention: string;
  /** Days covered when neither start_date nor days is given. */
  defaultDays: number;
};

/** daily_sync (and any type without a window of its own): up to today minus 2, about 16 months back. */
export const dailyWindow: RangeWindow = {
  newest: newestDataDay,
  retentionDays: RETENTION_DAYS,
  retention: "about 16 months",
  defaultDays: 7,
};

/** hourly_sync: Search Console keeps hourly data for the last ~10 days, today included. */
export const hourlyWindow: RangeWindow = {
  newest: (now) => dayOf(now),
  retentionDays: HOURLY_RETENTION_DAYS,
  retention: "hourly data: about 10 days",
  defaultDays: HOURLY_RETENTION_DAYS,
};

/** The range window of a task type. */
export function windowOf(taskType: string): RangeWindow {
  return taskType === "hourly_sync" ? hourlyWindow : dailyWindow;
}

/**
 * The days a task covers: `start_date`..`end_date`, or the `days` (default: the window's) ending at
 * `end_date` (default: the newest day with data; for daily data today minus 2 UTC). Checked against
 * that newest day, the data Search Console keeps and the longest range; a bad range is the client's mistake (400).
 */
export function resolveRange(r: { start_date?: string; end_date?: string; days?: number }, now = new Date(), w: RangeWindow = dailyWindow) {
  const newest = w.newest(now);
  const bad = (path: string, message: string) => new ApiError("validation_failed", `invalid range: ${message}`, [{ path, message }]);
  if (r.days !== undefined && r.start_date !== undefined) throw bad("days", "give days or start_date, not both");
  const end = r.end_date ?? newest;
  const start = r.start_date ?? addDays(end, -((r.days ?? w.defaultDays) - 1));
  if (end > newest)
    throw bad("end_date", `Search Console has data up to ${newest}${w === dailyWindow ? " (today minus 2 days, UTC)" : ""}`);
  if (start > end) throw bad("start_date", "start_date is after end_date");
  const oldest = addDays(newest, -w.retentionDays);
  // `days` before an ancient end_date can fall off the calendar (year -1): not a date at all.
  if (!isDate(start) || start < oldest) throw bad("start_date", `Search Console keeps data from ${oldest} on (${w.retention})`);
  if (daysBetween(start, end) > MAX_RANGE_DAYS) throw bad("start_date", `a task covers at most ${MAX_RANGE_DAYS} days`);
  return { start, end };
}
