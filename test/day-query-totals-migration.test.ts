import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { findTop } from "../src/insights/queries.ts";
import { comparePeriodTotals } from "../src/mcp/queries.ts";
import { openDb } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { SEARCH_SHORT_SQL } from "../src/db/sqlite/search.ts";
import { dayDate } from "../src/sync/grains.ts";
import { tempDir } from "./helpers/db.ts";
import { migrationsBefore, pgFixtureBefore } from "./helpers/migrations.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// The day × query rollup re-keyed by query (migrations sqlite 0028 / pg 0022, issue 18): a database filled under
// the old key (site_id, day, type, query_id) with its covering index is migrated; every rollup row is kept, every
// query's sums over a window are the same before and after, and the readers answer them from the new key.

setDefaultTimeout(60_000);
const dir = tempDir("sitesync-day-query-migration-");
afterAll(() => dir.cleanup());
const TAG = { sqlite: "0028_day_query_totals_by_query", pg: "0022_day_query_totals_by_query" };
const DAYS = [20400, 20401, 20402, 20403, 20404, 20405, 20406, 20407, 20408, 20409];

/** Two sites' detail over ten days, three types, and its rollup as the sync kept it. */
function fixtureSql(): string[] {
  const out: string[] = [
    "insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')",
    "insert into gsc_pages (id, site_id, page) values (1, 1, 'https://a.example/x'), (2, 1, 'https://a.example/y'), (3, 2, 'https://b.example/z')",
  ];
  const queries: string[] = [];
  for (let q = 1; q <= 12; q++) queries.push(`(${q}, ${q <= 8 ? 1 : 2}, 'q${q}')`);
  out.push(`insert into gsc_queries (id, site_id, query) values ${queries.join(", ")}`);
  const detail: string[] = [];
  for (const [site, pages, qs] of [
    [1, [1, 2], [1, 2, 3, 4, 5, 6, 7, 8]],
    [2, [3], [9, 10, 11, 12]],
  ] as const)
    for (const day of DAYS)
      for (const type of [1, 2, 3])
        for (const page of pages)
          for (const q of qs)
            for (const device of [1, 2, 3]) {
              if ((q * 7 + day + type * 3 + page + device * 5) % 4 === 0) continue;
              const v = q + device + type + (day % 5);
              detail.push(`(${site}, ${day}, ${type}, ${page}, ${q}, ${device}, ${v}, ${v * 10}, ${v * 1000})`);
            }
  out.push(
    `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) values ${detail.join(", ")}`,
  );
  out.push(`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
    select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position) from gsc_query_detail group by site_id, day, type, query_id`);
  return out;
}

const dumpSql = "select site_id, day, type, query_id, clicks, impressions, sum_position from gsc_day_query_totals order by 1, 2, 3, 4";
/** Every query's sums over a window (site 1, web), as a reader asks them. */
const windowSql = (from: number, to: number) => `select query_id, sum(clicks) as c, sum(impressions) as i, sum(sum_position) as p
  from gsc_day_query_totals where site_id = 1 and type = 1 and day between ${from} and ${to} group by query_id order by query_id`;
const windows: [number, number][] = [
  [DAYS[0]!, DAYS[9]!],
  [DAYS[3]!, DAYS[3]!],
  [DAYS[2]!, DAYS[8]!],
];

describe("SQLite: the day × query rollup re-keyed by query in place", () => {
  test("every rollup row kept, the same sums per query over each window; the new key, no covering index, WITHOUT ROWID", async () => {
    const path = join(dir.dir, "old.db");
    migrate(path, undefined, migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir));
    const old = new Database(path);
    for (const s of fixtureSql()) old.run(s);
    const before = old.query(dumpSql).all();
    const sumsBefore = windows.map(([a, b]) => old.query(windowSql(a, b)).all());
    old.close();
    expect(before.length).toBe(360); // 12 queries × 10 days × 3 types
    migrate(path);
    const db = new Database(path);
    try {
      expect(db.query(dumpSql).all()).toEqual(before);
      expect(windows.map(([a, b]) => db.query(windowSql(a, b)).all())).toEqual(sumsBefore);
      const sqlText = db.query<{ sql: string }, []>("select sql from sqlite_master where name = 'gsc_day_query_totals'").get()!.sql;
      // Keyed by day since 0032 (the next describe).
      expect(sqlText).toMatch(/PRIMARY KEY\(`site_id`, `type`, `day`, `query_id`\)/);
      expect(sqlText).toMatch(/WITHOUT ROWID/);
      expect(db.query("select name from pragma_index_list('gsc_day_query_totals') where origin <> 'pk'").all()).toEqual([]);
      // Query search reads the new key: the same totals as the detail gives.
      const search = db
        .query(SEARCH_SHORT_SQL.replace(/\$(\w+)/g, ":$1"))
        .all({ ":site_id": 1, ":pattern": "q%", ":start_day": DAYS[0]!, ":end_day": DAYS[9]!, ":limit": 5 });
      expect(search.length).toBe(5);
    } finally {
      db.close();
    }
    // The app's readers over the migrated file: the same sums as before the migration, whichever path they take.
    const app = openDb({ path, role: "test" });
    try {
      for (const [i, [a, b]] of windows.entries()) {
        const top = await findTop(app, { siteId: 1, start: dayDate(a), end: dayDate(b), searchType: "web", by: "query", limit: 100 });
        const want = (sumsBefore[i] as { query_id: number; c: number; i: number }[])
          .map((r) => ({ query: `q${r.query_id}`, clicks: r.c, impressions: r.i }))
          .sort((x, y) => y.clicks - x.clicks || y.impressions - x.impressions || (x.query < y.query ? -1 : 1));
        expect(top.map((t) => ({ query: t.query, clicks: t.clicks, impressions: t.impressions }))).toEqual(want);
        const totals = await comparePeriodTotals(app, {
          siteId: 1,
          searchType: "web",
          period1: { start: dayDate(a), end: dayDate(b) },
          period2: { start: dayDate(a), end: dayDate(b) },
        });
        expect(totals.period1_queries).toBe(sumsBefore[i]!.length);
      }
    } finally {
      app.close();
    }
  });
});

describe("SQLite: the day × query rollup re-keyed by day in place (0032)", () => {
  const lastDaysSql = "select site_id, type, query_id, day from gsc_query_last_days order by 1, 2, 3";
  test("every rollup row and each query's newest day kept; the new key, WITHOUT ROWID; the triggers keep the newest days", () => {
    const path = join(dir.dir, "by-day.db");
    migrate(path, undefined, migrationsBefore(migrationsFolder, "0032_day_query_totals_by_day", dir.dir));
    const old = new Database(path);
    for (const s of fixtureSql()) old.run(s);
    const before = old.query(dumpSql).all();
    const lastBefore = old.query(lastDaysSql).all();
    old.close();
    expect(lastBefore.length).toBe(36); // 12 queries × 3 types, kept by 0029's triggers
    migrate(path);
    const db = new Database(path);
    try {
      db.run("pragma foreign_keys = on");
      expect(db.query(dumpSql).all()).toEqual(before);
      expect(db.query(lastDaysSql).all()).toEqual(lastBefore);
      const sqlText = db.query<{ sql: string }, []>("select sql from sqlite_master where name = 'gsc_day_query_totals'").get()!.sql;
      expect(sqlText).toMatch(/PRIMARY KEY\(`site_id`, `type`, `day`, `query_id`\)/);
      expect(sqlText).toMatch(/WITHOUT ROWID/);
      const newest = (q: number) =>
        db.query<{ day: number }, [number]>("select day from gsc_query_last_days where site_id = 1 and type = 1 and query_id = ?").get(q)
          ?.day;
      // A query's newest day deleted: the walk back finds its previous stored day, skipping days without it.
      const [d7, d8, d9] = [DAYS[7]!, DAYS[8]!, DAYS[9]!];
      expect(newest(1)).toBe(d9);
      db.run(`delete from gsc_day_query_totals where site_id = 1 and type = 1 and query_id = 1 and day in (${d8}, ${d9})`);
      expect(newest(1)).toBe(d7);
      // Not its newest day: unchanged. Every day gone: the row goes.
      db.run(`delete from gsc_day_query_totals where site_id = 1 and type = 1 and query_id = 1 and day = ${DAYS[0]}`);
      expect(newest(1)).toBe(d7);
      db.run("delete from gsc_day_query_totals where site_id = 1 and type = 1 and query_id = 1");
      expect(newest(1)).toBeUndefined();
      // A row added on a newer day: it becomes the newest.
      db.run(
        `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position) values (1, ${d9 + 1}, 1, 2, 1, 1, 100)`,
      );
      expect(newest(2)).toBe(d9 + 1);
      // A site purged (the rollup cascades): its newest days go, the other site's stay.
      db.run("delete from sites where id = 1");
      expect(db.query("select count(*) as n from gsc_day_query_totals where site_id = 1").get()).toEqual({ n: 0 });
      expect(db.query("select distinct site_id from gsc_query_last_days").all()).toEqual([{ site_id: 2 }]);
    } finally {
      db.close();
    }
  });
});

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("PostgreSQL: the day × query rollup re-keyed by query in place", () => {
  const server = usePostgres();

  test("every rollup row kept, the same sums per query; the new primary key and the (site_id, day, type, query_id) index", async () => {
    const url = await server.newDatabase();
    const c = await pgFixtureBefore(url, TAG.pg, fixtureSql(), dir.dir);
    try {
      const dump = async () => (await c.query(dumpSql)).rows.map((r) => Object.values(r).map(Number));
      const sums = async () =>
        Promise.all(windows.map(async ([a, b]) => (await c.query(windowSql(a, b))).rows.map((r) => Object.values(r).map(Number))));
      const before = await dump();
      const sumsBefore = await sums();
      await migratePg(url);
      expect(await dump()).toEqual(before);
      expect(await sums()).toEqual(sumsBefore);
      const indexes = (
        await c.query("select indexname, indexdef from pg_indexes where tablename = 'gsc_day_query_totals' order by indexname")
      ).rows.map((r) => `${r.indexname}: ${String(r.indexdef).replace(/^.*? USING \w+ /, "")}`);
      expect(indexes).toEqual([
        "gsc_day_query_totals_site_day_idx: (site_id, day, type, query_id)",
        // The key carries the sums since migration 0027 (index-only reads by the key).
        "gsc_day_query_totals_site_id_query_id_day_type_pk: (site_id, query_id, day, type) INCLUDE (clicks, impressions, sum_position)",
      ]);
    } finally {
      await c.end();
    }
  });
});
