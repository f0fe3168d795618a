import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { addDays, dayOf } from "../sync/dates.ts";
import { findNewestDay, type Period, type Scope } from "./queries.ts";

/** The two periods compare_periods compares, for its period_type (dates in UTC). */
export async function periodsOf(db: Db, s: Scope, type: string, custom?: { period1: Period; period2: Period }): Promise<[Period, Period]> {
  const today = dayOf(new Date());
  if (type === "week") {
    const monday = addDays(today, -((new Date(`${today}T00:00:00Z`).getUTCDay() + 6) % 7));
    return [
      { start: addDays(monday, -7), end: addDays(monday, -1) },
      { start: monday, end: today },
    ];
  }
  if (type === "month") {
    const first = `${today.slice(0, 8)}01`;
    const lastEnd = addDays(first, -1);
    return [
      { start: `${lastEnd.slice(0, 8)}01`, end: lastEnd },
      { start: first, end: today },
    ];
  }
  if (type === "last_7_days") {
    const newest = await findNewestDay(db, { ...s, since: undefined });
    if (!newest) throw new ApiError("not_found", "the site has no synced data for this search type yet");
    return [
      { start: addDays(newest, -13), end: addDays(newest, -7) },
      { start: addDays(newest, -6), end: newest },
    ];
  }
  if (!custom)
    throw new ApiError("validation_failed", "period_type 'custom' needs custom_periods {period1: {start, end}, period2: {start, end}}");
  return [custom.period1, custom.period2];
}
