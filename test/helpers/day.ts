// "Today" for test files that seed rows relative to the current day and then ask the app, which reads its
// own clock (new Date()) for its windows (days=N, final days, hourly days). A file whose run crossed a day
// boundary would see the app's "today" move one day past the rows it seeded. The app has no injectable clock
// and a frozen clock (bun:test setSystemTime) would stop every lease and deadline, so instead a file starting
// close to a boundary waits until the boundary has passed, then takes its day.

import { dayOf } from "../../src/sync/dates.ts";

const pacific = new Intl.DateTimeFormat("en-CA", { timeZone: "America/Los_Angeles", year: "numeric", month: "2-digit", day: "2-digit" });

/** The calendar days a moment falls on that the app uses: UTC (`dayOf`) and Pacific (Search Console's). */
function daysAt(ms: number): string {
  const at = new Date(ms);
  return `${dayOf(at)} ${pacific.format(at)}`;
}

/** Milliseconds to wait so that no UTC or Pacific midnight falls in the next `marginMs` (0 when none does). */
export function waitBeforeDayBoundary(nowMs: number, marginMs: number): number {
  if (daysAt(nowMs) === daysAt(nowMs + marginMs)) return 0;
  // The first boundary within the margin, to the second; then just past it.
  let lo = nowMs;
  let hi = nowMs + marginMs;
  const start = daysAt(nowMs);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2);
    if (daysAt(mid) === start) lo = mid;
    else hi = mid;
  }
  return hi - nowMs + 1000 + waitBeforeDayBoundary(hi + 1000, marginMs);
}

/**
 * Now, taken when no UTC or Pacific midnight falls within the next `marginMs` (default 10 minutes, more than
 * these files take on a loaded machine): near one, waits until it has passed.
 */
export async function stableNow(marginMs = 10 * 60_000): Promise<Date> {
  const wait = waitBeforeDayBoundary(Date.now(), marginMs);
  if (wait > 0) {
    console.warn(`stableNow: a day boundary is within ${marginMs / 60_000} min; waiting ${Math.ceil(wait / 1000)} s for it to pass`);
    await Bun.sleep(wait);
  }
  return new Date();
}

/** Today's UTC day (`dayOf(new Date())`) with no day boundary in the next `marginMs` (`stableNow`). */
export async function stableToday(marginMs?: number): Promise<string> {
  return dayOf(await stableNow(marginMs));
}
