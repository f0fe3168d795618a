import pg from "pg";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { demoRows } from "../src/sync/demo.ts";
import { searchTypes } from "../src/sync/source.ts";
import type { SeedResult } from "./seed-analytics.ts";

// seedAnalytics (seed-analytics.ts) for PostgreSQL: the same demo rows of the same site, days and
// counts, loaded into an already migrated database in multi-row inserts (unnest of arrays, one
// statement per day and search type). The query-search triggers fill gsc_queries as a sync would.

/** Seeds one site with about `rows` rows over the `days` days ending at today minus 2 (UTC), as seedAnalytics does. */
export async function seedAnalyticsPg(url: string, opts: { rows: number; days: number; domain?: string }): Promise<SeedResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const domain = opts.domain ?? "sc-domain:bench-analytics.example";
    const siteId = Number(
      (await client.query("insert into sites (domain, name) values ($1, $2) returning id", [domain, "Bench analytics"])).rows[0].id,
    );
    const rowsPerDayType = Math.max(1, Math.ceil(opts.rows / (opts.days * searchTypes.length)));
    const end = newestDataDay();
    const start = addDays(end, -(opts.days - 1));
    let total = 0;
    for (let d = 0; d < opts.days; d++) {
      const date = addDays(start, d);
      await client.query("begin");
      for (const type of searchTypes) {
        const rows = demoRows(domain, date, type, rowsPerDayType);
        await client.query(
          `insert into gsc_performance_data (site_id, date, page, query, device, search_type, clicks, impressions, ctr, position)
           select $1, $2, page, query, device, $3, clicks, impressions, ctr, position
             from unnest($4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::float8[], $10::float8[])
                  as r(page, query, device, clicks, impressions, ctr, position)`,
          [
            siteId,
            date,
            type,
            rows.map((r) => r.page),
            rows.map((r) => r.query),
            rows.map((r) => r.device),
            rows.map((r) => r.clicks ?? 0),
            rows.map((r) => r.impressions ?? 0),
            rows.map((r) => r.ctr ?? 0),
            rows.map((r) => r.position ?? 0),
          ],
        );
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
    await client.query("vacuum analyze gsc_performance_data");
    await client.query("vacuum analyze gsc_queries");
    return { siteId, domain, rows: total, days: opts.days, start, end, rowsPerDayType };
  } finally {
    await client.end();
  }
}
