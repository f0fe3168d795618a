import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { defaultPragmas } from "../src/db/sqlite/open.ts";
import { tempDir } from "./helpers/db.ts";
import { migrationsBefore } from "./helpers/migrations.ts";

// SQLite migration 0021 (issue 18): the property, page and appearance totals moved in place into WITHOUT ROWID
// tables clustered on their key. A file filled under the old layout keeps every row and value; the tables lose
// their rowid and the key's separate unique index; the key still refuses a duplicate; deleting a site still
// removes its rows (the foreign key kept).

const dir = tempDir("sitesync-grain-tables-migration-");
afterAll(() => dir.cleanup());
const TAG = "0021_grain_tables_without_rowid";
const TABLES = ["gsc_property_totals", "gsc_page_totals", "gsc_appearance_totals"] as const;

const dump = (db: Database, table: string) => db.query(`select * from ${table} order by 1, 2, 3, 4, 5`).all();

describe("migration 0021: grain tables WITHOUT ROWID", () => {
  test("an old-layout file with data keeps every row; the tables become one b-tree each", () => {
    const path = join(dir.dir, "old.db");
    migrate(path, defaultPragmas, migrationsBefore(migrationsFolder, TAG, dir.dir));
    const db = new Database(path);
    db.run("PRAGMA foreign_keys = ON");
    db.run("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
    db.run("insert into gsc_pages (id, site_id, page) values (1, 1, 'https://a.example/x'), (2, 2, 'https://b.example/y')");
    // Inserted out of key order (newest day first), several countries and devices, big sums.
    for (const site of [1, 2])
      for (const day of [20500, 20499, 20498])
        for (const type of [2, 1])
          for (const [device, country] of [
            [2, "usa"],
            [1, ""],
            [3, "deu"],
          ] as const) {
            const v = site * 1000 + day - 20000 + type * 7 + device;
            db.run(
              "insert into gsc_property_totals (site_id, day, type, country, device, clicks, impressions, sum_position) values (?, ?, ?, ?, ?, ?, ?, ?)",
              [site, day, type, country, device, v, v * 10, v * 123_456_789],
            );
            db.run(
              "insert into gsc_page_totals (site_id, day, type, page_id, country, device, clicks, impressions, sum_position) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              [site, day, type, site, country, device, v + 1, v * 11, v * 1000],
            );
          }
    db.run(
      "insert into gsc_appearance_totals (site_id, day, type, appearance, clicks, impressions, sum_position) values (1, 20500, 1, 'VIDEO', 1, 2, 300), (1, 20499, 1, 'FAQ_RICH_RESULT', 4, 5, 600), (2, 20500, 1, 'VIDEO', 7, 8, 900)",
    );
    const before: Record<string, unknown[]> = Object.fromEntries(TABLES.map((t) => [t, dump(db, t)]));
    expect(before.gsc_page_totals).toHaveLength(36);
    const autoindexes = () =>
      db
        .query<{ name: string }, []>("select name from sqlite_master where type = 'index' and name like 'sqlite_autoindex_gsc_%_totals_%'")
        .all()
        .map((r) => r.name)
        .filter((n) => !n.includes("day_query"));
    expect(autoindexes()).toHaveLength(3);
    db.close();

    migrate(path);
    const after = new Database(path);
    after.run("PRAGMA foreign_keys = ON");
    try {
      for (const t of TABLES) {
        expect({ t, rows: dump(after, t) }).toEqual({ t, rows: before[t]! });
        const sql = after.query<{ sql: string }, [string]>("select sql from sqlite_master where type = 'table' and name = ?").get(t)!.sql;
        expect({ t, sql }).toEqual({ t, sql: expect.stringMatching(/\)\s*WITHOUT ROWID$/) });
      }
      // WITHOUT ROWID tables keep their key inside the table's b-tree: no separate unique index is left.
      const names = after
        .query<{ name: string }, []>("select name from sqlite_master where type = 'index' and name like 'sqlite_autoindex_gsc_%_totals_%'")
        .all()
        .map((r) => r.name)
        .filter((n) => !n.includes("day_query"));
      expect(names).toEqual([]);
      expect(() =>
        after.run(
          "insert into gsc_page_totals (site_id, day, type, page_id, country, device, clicks, impressions, sum_position) values (1, 20500, 1, 1, 'usa', 2, 0, 0, 0)",
        ),
      ).toThrow(/UNIQUE constraint failed/);
      // The reads' seeks: the key's own b-tree on (site_id, day ...).
      const plan = after
        .query<{ detail: string }, []>(
          "explain query plan select sum(clicks) from gsc_page_totals where site_id = 1 and day >= 20499 and day <= 20500 and type = 1",
        )
        .all()
        .map((r) => r.detail)
        .join("\n");
      expect(plan).toMatch(/SEARCH gsc_page_totals USING PRIMARY KEY \(site_id=\? AND day>\? AND day<\?\)/);
      after.run("delete from sites where id = 2");
      for (const t of TABLES) expect(after.query<{ n: number }, []>(`select count(*) as n from ${t} where site_id = 2`).get()!.n).toBe(0);
      expect(after.query<{ n: number }, []>("select count(*) as n from gsc_page_totals").get()!.n).toBe(18);
    } finally {
      after.close();
    }
  });
});
