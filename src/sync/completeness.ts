import type { Db } from "../db/index.ts";
import { completenessSummary, findCompleteness } from "./grain-writes.ts";
import { toDayCompleteness } from "./schemas.ts";

// How complete each stored day is (gsc_day_completeness), as one mark per (day, search type) and per day:
// the dashboard's calendar and the MCP tool get_sync_status show the same marks.

/**
 * A day's completeness mark, worst first: derived (its totals summed from the named queries: under-counted),
 * truncated (Google's 50,000-row cap cut the page or query rows), provisional (Search Console may still
 * revise it), complete.
 */
export const completenessMarks = ["derived", "truncated", "provisional", "complete"] as const;
export type CompletenessMark = (typeof completenessMarks)[number];

export type DayCompleteness = ReturnType<typeof toDayCompleteness>;

/** The mark of one (day, search type). */
export function markOf(c: Pick<DayCompleteness, "derived" | "page_truncated" | "detail_truncated" | "data_state">): CompletenessMark {
  if (c.derived) return "derived";
  if (c.page_truncated || c.detail_truncated) return "truncated";
  if (c.data_state === "provisional") return "provisional";
  return "complete";
}

/** The worst mark of a day's search types. */
export function worstMark(marks: CompletenessMark[]): CompletenessMark {
  return completenessMarks.find((m) => marks.includes(m)) ?? "complete";
}

/** One day's completeness: its mark (the worst of its search types) and each search type's row. */
export type CompletenessDay = { date: string; mark: CompletenessMark; types: (DayCompleteness & { mark: CompletenessMark })[] };

/** A site's completeness per day between two dates (both included), oldest first; days never fetched at the grains are absent. */
export async function listCompletenessDays(db: Db, siteId: number, start: string, end: string): Promise<CompletenessDay[]> {
  const rows = [...(await findCompleteness(db, siteId, start, end)).values()].map(toDayCompleteness);
  const byDay = new Map<string, (DayCompleteness & { mark: CompletenessMark })[]>();
  for (const r of rows) {
    const list = byDay.get(r.date) ?? [];
    list.push({ ...r, mark: markOf(r) });
    byDay.set(r.date, list);
  }
  return [...byDay.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([date, types]) => ({ date, mark: worstMark(types.map((t) => t.mark)), types }));
}

/** A site's completeness summary (all days) and its days between two dates. */
export async function siteCompleteness(db: Db, siteId: number, start: string, end: string) {
  const [summary, days] = await Promise.all([completenessSummary(db, siteId), listCompletenessDays(db, siteId, start, end)]);
  const counts = Object.fromEntries(completenessMarks.map((m) => [m, days.filter((d) => d.mark === m).length])) as Record<
    CompletenessMark,
    number
  >;
  return { summary, start, end, days_fetched: days.length, marks: counts, days };
}
