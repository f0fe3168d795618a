import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Q } from "../src/db/engine.ts";
import * as pgSchema from "../src/db/pg/schema.ts";
import { replaceDayDetail } from "../src/sync/data.ts";
import { dayNumber, typeCode } from "../src/sync/grains.ts";
import { refreshDayRollups } from "../src/sync/rollups.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { type SeedData, seedDayGrains, seedDayRows, seedPlan, seedTerms } from "./anchors-data.ts";
import { searchTypes } from "../src/sync/search-types.ts";
import type { SeedResult } from "./seed-analytics.ts";

// seedAnalytics (seed-analytics.ts) for PostgreSQL: the same demo rows of the same site, days and
// counts, loaded into an already migrated database through the sync's write path (replaceDayDetail, as an atomic day: the
// compact detail and its dictionaries in multi-row statements; the rollup rebuilt), one day per transaction.

/** Seeds one site with about `rows` rows over the `days` days ending at today minus 2 (UTC), as seedAnalytics does. */
export async function seedAnalyticsPg(
  url: string,
  opts: { rows: number; days: number; domain?: string; data?: SeedData },
): Promise<SeedResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const orm = drizzle({ client, schema: pgSchema }) as unknown as Q;
  try {
    const domain = opts.domain ?? "sc-domain:bench-analytics.example";
    const siteId = Number(
      (await client.query("insert into sites (domain, name) values ($1, $2) returning id", [domain, "Bench analytics"])).rows[0].id,
    );
    const data = opts.data ?? "demo";
    const { types, rowsPerDayType, vocabulary } = seedPlan(data, opts.rows, opts.days, searchTypes);
    const end = newestDataDay();
    const start = addDays(end, -(opts.days - 1));
    let total = 0;
    for (let d = 0; d < opts.days; d++) {
      const date = addDays(start, d);
      await client.query("begin");
      for (const type of types) {
        const rows = seedDayRows(data, domain, date, type, rowsPerDayType, vocabulary);
        await replaceDayDetail(orm, siteId, date, type, rows);
        await seedDayGrains(orm, siteId, date, type, rows);
        await refreshDayRollups(orm, siteId, dayNumber(date), typeCode(type));
        await client.query("insert into gsc_synced_days (site_id, date, search_type, row_count) values ($1, $2, $3, $4)", [
          siteId,
          date,
          type,
          rows.length,
        ]);
        total += rows.length;
      }
      await client.query("commit");
    }
    // Fresh statistics and visibility map: the planner's choices and index-only scans as after autovacuum.
    await client.query("vacuum analyze gsc_query_detail");
    await client.query("vacuum analyze gsc_day_query_totals");
    await client.query("vacuum analyze gsc_pages");
    await client.query("vacuum analyze gsc_queries");
    return { siteId, domain, rows: total, days: opts.days, start, end, rowsPerDayType, data, terms: seedTerms(data, domain, end) };
  } finally {
    await client.end();
  }
}
