import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { addDays, daysBetween, newestDataDay } from "../sync/dates.ts";
import { findNewestDataDay, type Filters } from "./queries.ts";

/** What a caller may give to pick an insight's rows; everything optional. */
export type WindowInput = { start?: string; end?: string; search_type?: string; device?: string; country?: string; days?: number };

/** Days of an insight window when none is given: Search Console's own default view. */
export const DEFAULT_DAYS = 28;
/** Longest window an insight reads. */
export const MAX_WINDOW_DAYS = 486;

/**
 * The rows an insight reads, with the defaults every surface (dashboard, API, CLI, MCP) shares: the
 * window ends at the site's newest day with data for the search type (else today minus 2) and spans
 * `days` (28) days; search type web.
 */
export async function insightFilters(db: Db, siteId: number, w: WindowInput): Promise<Filters> {
  const searchType = w.search_type ?? "web";
  const end = w.end ?? (await findNewestDataDay(db, siteId, searchType)) ?? newestDataDay();
  const start = w.start ?? addDays(end, -((w.days ?? DEFAULT_DAYS) - 1));
  if (start > end) throw new ApiError("validation_failed", `start ${start} is after end ${end}`, [{ path: "start", message: "after end" }]);
  if (daysBetween(start, end) > MAX_WINDOW_DAYS) {
    throw new ApiError("validation_failed", `the window is longer than ${MAX_WINDOW_DAYS} days`, [{ path: "start", message: "too early" }]);
  }
  return { siteId, start, end, searchType, device: w.device ?? null, country: w.country ?? null };
}
