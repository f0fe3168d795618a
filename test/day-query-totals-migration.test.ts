import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import pg from "pg";
import { migratePg, pgMigrationsFolder } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { defaultPragmas } from "../src/db/sqlite/open.ts";
import { SEARCH_SCAN_SQL, SEARCH_SHORT_SQL } from "../src/db/sqlite/search.ts";
import { tempDir } from "./helpers/db.ts";
import { testEngine } from "./helpers/engine.ts";
import { migrationsBefore } from "./helpers/migrations.ts";
import { postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// The in-place re-keying of the day × query rollup (migrations sqlite 0028 / pg 0022, issue 18's bytes): a
// database filled under the old layout (key (site_id, day, type, query_id) plus a covering by-query index) keeps
// every row and value, is keyed (site_id, query_id, day, type) afterwards with the covering index gone, the key
// still refuses a duplicate, deleting a site still removes its rows, and query search answers as before.

const dir = tempDir("sitesync-day-query-totals-migration-");
afterAll(() => dir.cleanup());
const TAG = { sqlite: "0028_day_query_totals_by_query", pg: "0022_day_query_totals_by_query" };

// Two sites, rows inserted newest day first and queries in reverse order (out of both keys' orders), two types,
// sums past 32 bits.
const QUERIES = ["red shoes", "blue shoes", "shoe shop", "hats", "red hats"];
const rollupRows: number[][] = [];
for (const site of [1, 2])
  for (const day of [20502, 20501, 20500])
    for (const type of [2, 1])
      for (let i = QUERIES.length - 1; i >= 0; i--) {
        if ((day + i + type) % 4 === 0) continue; // some (query, day, type) without a row
        const id = site * 10 + i + 1;
        const v = site * 1000 + (day - 20500) * 50 + type * 7 + i;
        rollupRows.push([site, day, type, id, v, v * 10, v * 123_456_789]);
      }
const INSERT_ROLLUP =
  "insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) values ($1, $2, $3, $4, $5, $6, $7)";
const DUMP = "select site_id, day, type, query_id, clicks, impressions, sum_position from gsc_day_query_totals order by 1, 2, 3, 4";

describe.skipIf(testEngine === "pg")("SQLite migration 0028: the day × query rollup keyed by query", () => {
  test("an old-layout file with data keeps every row, loses the covering index, and search answers the same", () => {
    const path = join(dir.dir, "old.db");
    migrate(path, defaultPragmas, migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir));
    const db = new Database(path);
    db.run("PRAGMA foreign_keys = ON");
    db.run("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
    for (const site of [1, 2])
      QUERIES.forEach((q, i) => db.run("insert into gsc_queries (id, site_id, query) values (?, ?, ?)", [site * 10 + i + 1, site, q]));
    const insert = db.prepare(INSERT_ROLLUP.replace(/\$\d/g, "?"));
    for (const r of rollupRows) insert.run(...r);
    // The detail the rollup sums (one page, one device): the reference search scans.
    db.run("insert into gsc_pages (id, site_id, page) values (1, 1, 'https://a.example/'), (2, 2, 'https://b.example/')");
    db.run(`insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
            select site_id, day, type, site_id, query_id, 1, clicks, impressions, sum_position from gsc_day_query_totals`);
    const search = (d: Database, sqlText: string, pattern: string) =>
      d.query(sqlText).all({ site_id: 1, pattern, start_day: 20501, end_day: 20502, limit: 10 } as never);
    const before = db.query(DUMP).all();
    expect(before).toHaveLength(rollupRows.length);
    const searchedBefore = search(db, SEARCH_SHORT_SQL, "%shoe%");
    expect(searchedBefore.length).toBe(3);
    expect(db.query("select name from sqlite_master where name = 'gsc_day_query_totals_site_query_idx'").all()).toHaveLength(1);
    db.close();

    migrate(path);
    const after = new Database(path);
    after.run("PRAGMA foreign_keys = ON");
    try {
      expect(after.query(DUMP).all()).toEqual(before);
      const { sql } = after.query<{ sql: string }, []>("select sql from sqlite_master where name = 'gsc_day_query_totals'").get()!;
      expect(sql).toMatch(/PRIMARY KEY\(`site_id`, `query_id`, `day`, `type`\)[\s\S]*\)\s*WITHOUT ROWID$/);
      expect(after.query("select name from sqlite_master where tbl_name = 'gsc_day_query_totals' and type = 'index'").all()).toEqual([]);
      // The rows are stored in the new key's order: a plain scan returns them by (site, query, day, type).
      const scanned = after.query("select site_id, query_id, day, type from gsc_day_query_totals").values() as number[][];
      const sorted = [...scanned].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]! || a[3]! - b[3]!);
      expect(scanned).toEqual(sorted);
      expect(search(after, SEARCH_SHORT_SQL, "%shoe%")).toEqual(searchedBefore);
      expect(search(after, SEARCH_SHORT_SQL, "%shoe%")).toEqual(search(after, SEARCH_SCAN_SQL, "%shoe%"));
      const plan = after
        .query<{ detail: string }, []>(
          "explain query plan select sum(clicks) from gsc_day_query_totals where site_id = 1 and query_id = 11 and day between 20500 and 20501",
        )
        .all()
        .map((r) => r.detail)
        .join("\n");
      expect(plan).toMatch(/SEARCH gsc_day_query_totals USING PRIMARY KEY \(site_id=\? AND query_id=\? AND day>\? AND day<\?\)/);
      expect(() => after.run(INSERT_ROLLUP.replace(/\$\d/g, "?"), rollupRows[0]!)).toThrow(/UNIQUE|PRIMARY KEY/);
      after.run("delete from sites where id = 2");
      expect(after.query("select distinct site_id from gsc_day_query_totals").values()).toEqual([[1]]);
    } finally {
      after.close();
    }
  });
});

describe.skipIf(testEngine === "sqlite" || postgresSkipReason !== null)(
  "PostgreSQL migration 0022: the day × query rollup keyed by query",
  () => {
    const server = usePostgres();

    test("an old-layout database with data keeps every row; the key is (site_id, query_id, day, type), the covering index gone", async () => {
      const url = await server.newDatabase();
      await migratePg(url, migrationsBefore(pgMigrationsFolder, TAG.pg, dir.dir));
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
        for (const r of rollupRows) await c.query(INSERT_ROLLUP, r);
        const before = (await c.query(DUMP)).rows;
        expect(before).toHaveLength(rollupRows.length);
        expect(await migratePg(url)).toBeGreaterThan(0);
        expect((await c.query(DUMP)).rows).toEqual(before);
        const key =
          await c.query(`select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = 'gsc_day_query_totals'::regclass and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)`);
        expect(key.rows.map((r) => r.attname)).toEqual(["site_id", "query_id", "day", "type"]);
        const indexes = await c.query("select indexname from pg_indexes where tablename = 'gsc_day_query_totals' order by 1");
        expect(indexes.rows).toEqual([{ indexname: "gsc_day_query_totals_site_id_query_id_day_type_pk" }]);
        await expect(c.query(INSERT_ROLLUP, rollupRows[0])).rejects.toThrow(/duplicate key/);
        await c.query("delete from sites where id = 2");
        expect((await c.query("select distinct site_id from gsc_day_query_totals")).rows).toEqual([{ site_id: 1 }]);
      } finally {
        await c.end();
      }
    });
  },
);
