import { findCompleteness, findDayTotals } from "../grain-writes.ts";
import { sumPosition, typeCode } from "../grains.ts";
import { searchTypes } from "../search-types.ts";
import { syncDay } from "./daily-sync.ts";
import { runDays } from "./days.ts";
import type { TaskHandler } from "./index.ts";

/**
 * recheck: looks for Google's corrections to days already stored as final. For each day of the range
 * and each search type stored final with data, asks Search Console for the property totals again (one
 * request) and compares them with the stored ones; a day whose totals changed is fetched again at
 * every grain (as daily_sync does), which logs the change in gsc_corrections (old and new totals).
 * Days never stored, or stored provisional (the daily sync fetches those again anyway), are left alone.
 * Scheduled daily over the last SYNC_RECHECK_DAYS final days; on demand over any range.
 */
export const recheck: TaskHandler = {
  type: "recheck",
  async run(ctx) {
    let complete: Awaited<ReturnType<typeof findCompleteness>> | null = null;
    await runDays(ctx, async ({ site, day, days }) => {
      complete ??= await findCompleteness(ctx.db, site.id, days[0]!, days[days.length - 1]!);
      let records = 0;
      let checked = 0;
      for (const type of searchTypes) {
        const c = complete.get(`${day}|${typeCode(type)}`);
        if (c?.data_state !== "final" || c.property_rows === 0) continue;
        checked++;
        const fresh = await ctx.source.totals(site.domain, day, type, "property", ctx.signal);
        const stored = await findDayTotals(ctx.db, site.id, day, typeCode(type));
        const now = fresh.reduce(
          (s, r) => ({
            clicks: s.clicks + r.clicks,
            impressions: s.impressions + r.impressions,
            sum_position: s.sum_position + sumPosition(r.position, r.impressions),
          }),
          { clicks: 0, impressions: 0, sum_position: 0 },
        );
        if (now.clicks === stored.clicks && now.impressions === stored.impressions && now.sum_position === stored.sum_position) continue;
        records += await syncDay(ctx, site, day, type);
      }
      return { skipped: checked === 0, records };
    });
  },
};
