import { Database } from "bun:sqlite";
import { migrate } from "../src/db/sqlite/migrate.ts";
import type { Q } from "../src/db/engine.ts";
import { wrapOrm } from "../src/db/sqlite/open.ts";
import { indexAllPendingQueries } from "../src/search/queries.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { replaceDayDetail } from "../src/sync/data.ts";
import { dayNumber, typeCode } from "../src/sync/grains.ts";
import { refreshDayRollups } from "../src/sync/rollups.ts";
import { type SeedData, seedDayGrains, seedDayRows, seedPlan, seedTerms } from "./anchors-data.ts";
import { searchTypes } from "../src/sync/search-types.ts";

// A fast direct seeder for the analytics bench: the demo source's rows (the same ones a demo sync
// stores) written through the sync's own write path (replaceDayDetail, as an atomic day: the compact query detail and its
// dictionaries; the day × query rollup rebuilt per day) and gsc_synced_days of a migrated file, one
// day per transaction, without the service in between.

export type SeedResult = {
  siteId: number;
  domain: string;
  rows: number;
  days: number;
  start: string;
  end: string;
  rowsPerDayType: number;
  data: SeedData;
  terms: ReturnType<typeof seedTerms>;
};

/** Which day a seed writes first: the oldest, or the newest (as a new site's backfill, queueBackfill, does). */
export type SeedOrder = "oldest_first" | "newest_first";

/**
 * Seeds one site with about `rows` rows spread over the `days` days ending at today minus 2 (UTC),
 * each day holding the same number of demo rows per search type. Migrates the file first. With `until`
 * (epoch ms) it stops after the day that passes it: the result then says the rows and days written (with
 * `newest_first`, the most recent days, so reports over the last 90 days read a full window).
 */
export async function seedAnalytics(
  path: string,
  opts: { rows: number; days: number; domain?: string; data?: SeedData; order?: SeedOrder; until?: number },
): Promise<SeedResult> {
  migrate(path);
  const db = new Database(path, { strict: true });
  try {
    db.run("PRAGMA journal_mode = WAL");
    db.run("PRAGMA synchronous = OFF");
    db.run("PRAGMA cache_size = -262144");
    const domain = opts.domain ?? "sc-domain:bench-analytics.example";
    const siteId = db
      .query<{ id: number }, [string, string]>("insert into sites (domain, name) values (?, ?) returning id")
      .get(domain, "Bench analytics")!.id;
    const data = opts.data ?? "demo";
    const { types, rowsPerDayType, vocabulary } = seedPlan(data, opts.rows, opts.days, searchTypes);
    const end = newestDataDay();
    const start = addDays(end, -(opts.days - 1));

    const orm = wrapOrm(db);
    const mark = db.prepare("insert into gsc_synced_days (site_id, date, search_type, row_count) values (?, ?, ?, ?)");
    let total = 0;
    let written = 0;
    let oldest = end;
    for (let d = 0; d < opts.days; d++) {
      if (opts.until !== undefined && Date.now() >= opts.until) break;
      const date = opts.order === "newest_first" ? addDays(end, -d) : addDays(start, d);
      if (date < oldest) oldest = date;
      written++;
      db.run("BEGIN");
      for (const type of types) {
        const rows = seedDayRows(data, domain, date, type, rowsPerDayType, vocabulary);
        // This connection is the seeder's alone: awaiting inside its BEGIN ... COMMIT is safe.
        await replaceDayDetail(orm, siteId, date, type, rows);
        await seedDayGrains(orm as unknown as Q, siteId, date, type, rows);
        await refreshDayRollups(orm, siteId, dayNumber(date), typeCode(type));
        mark.run(siteId, date, type, rows.length);
        total += rows.length;
      }
      db.run("COMMIT");
    }
    // The query-search index (FTS5 over the site's distinct queries), as a sync does after each day.
    await indexAllPendingQueries(async (fn) => db.transaction(() => fn(orm))());
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    const last = opts.order === "newest_first" ? end : addDays(start, written - 1);
    const first = opts.order === "newest_first" ? oldest : start;
    return {
      siteId,
      domain,
      rows: total,
      days: written,
      start: first,
      end: last,
      rowsPerDayType,
      data,
      terms: seedTerms(data, domain, last),
    };
  } finally {
    db.close();
  }
}
