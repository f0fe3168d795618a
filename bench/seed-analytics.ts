import { Database } from "bun:sqlite";
import { migrate } from "../src/db/sqlite/migrate.ts";
import { wrapOrm } from "../src/db/sqlite/open.ts";
import { indexAllPendingQueries } from "../src/search/queries.ts";
import { addDays, newestDataDay } from "../src/sync/dates.ts";
import { demoRows } from "../src/sync/demo.ts";
import { searchTypes } from "../src/sync/source.ts";

// A fast direct seeder for the analytics bench: the demo source's rows (the same ones a demo sync
// stores) written straight into gsc_performance_data and gsc_synced_days of a migrated file, with
// that table's secondary indexes dropped during the load and rebuilt after it (a bulk load's usual
// trick, and what the original's --fast-mode did).

export type SeedResult = { siteId: number; domain: string; rows: number; days: number; start: string; end: string; rowsPerDayType: number };

/**
 * Seeds one site with about `rows` rows spread over the `days` days ending at today minus 2 (UTC),
 * each day holding the same number of demo rows per search type. Migrates the file first.
 */
export async function seedAnalytics(path: string, opts: { rows: number; days: number; domain?: string }): Promise<SeedResult> {
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
    const rowsPerDayType = Math.max(1, Math.ceil(opts.rows / (opts.days * searchTypes.length)));
    const end = newestDataDay();
    const start = addDays(end, -(opts.days - 1));

    const indexes = db
      .query<{ name: string; sql: string }, []>(
        "select name, sql from sqlite_master where type = 'index' and tbl_name = 'gsc_performance_data' and sql is not null",
      )
      .all();
    for (const i of indexes) db.run(`drop index "${i.name}"`);

    const insert = db.prepare(
      `insert into gsc_performance_data (site_id, date, page, query, device, search_type, clicks, impressions, ctr, position)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const mark = db.prepare("insert into gsc_synced_days (site_id, date, search_type, row_count) values (?, ?, ?, ?)");
    let total = 0;
    const day = db.transaction((date: string) => {
      for (const type of searchTypes) {
        const rows = demoRows(domain, date, type, rowsPerDayType);
        for (const r of rows)
          insert.run(siteId, date, r.page, r.query, r.device, type, r.clicks ?? 0, r.impressions ?? 0, r.ctr ?? 0, r.position ?? 0);
        mark.run(siteId, date, type, rows.length);
        total += rows.length;
      }
    });
    for (let d = 0; d < opts.days; d++) day(addDays(start, d));
    for (const i of indexes) db.run(i.sql);
    // The query-search index (FTS5 over the site's distinct queries), as a sync does after each day.
    const orm = wrapOrm(db);
    await indexAllPendingQueries(async (fn) => db.transaction(() => fn(orm))());
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    return { siteId, domain, rows: total, days: opts.days, start, end, rowsPerDayType };
  } finally {
    db.close();
  }
}
