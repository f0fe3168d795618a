import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import pg from "pg";
import { migratePg, pgMigrationsFolder } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { dayNumber } from "../src/sync/grains.ts";
import { tempDir } from "./helpers/db.ts";
import { migrationsBefore } from "./helpers/migrations.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";

// The in-place move of the query detail (migrations sqlite 0015 / pg 0011, issue 18): a database filled
// under the old layout (gsc_performance_data as a table) is migrated; every old row reads back the same
// through the gsc_performance_data view, the rollup and the derived totals add up, and a row the move
// cannot convert fails the migration with nothing changed.

setDefaultTimeout(60_000);
const dir = tempDir("sitesync-detail-migration-");
afterAll(() => dir.cleanup());
const TAG = { sqlite: "0015_query_detail_compact", pg: "0011_query_detail_compact" };

type Old = {
  site_id: number;
  date: string;
  page: string;
  query: string;
  device: string;
  search_type: string;
  clicks: number;
  impressions: number;
  position: number;
};

// Two sites sharing a page URL and a query text; four types; three devices; a position with more digits
// than sum_position keeps (3.14159 × 1 impression -> 3.14).
const rows: Old[] = [];
for (const site_id of [1, 2])
  for (const date of ["2026-03-01", "2026-03-02"])
    for (const [i, search_type] of ["web", "image", "video", "news"].entries())
      for (const [j, device] of ["DESKTOP", "MOBILE", "TABLET"].entries())
        for (const query of ["shoes", "red shoes"])
          rows.push({
            site_id,
            date,
            page: j === 2 ? "https://a.example/shop" : `https://a.example/p${site_id}`,
            query,
            device,
            search_type,
            clicks: i + j,
            impressions: 10 * (i + 1) + j + site_id,
            position: 1.5 + i + j / 10,
          });
// biome-ignore lint/suspicious/noApproximativeNumericConstant: a position with five decimals, as stored
rows.push({ ...rows[0]!, date: "2026-03-03", query: "pi", clicks: 0, impressions: 1, position: 3.14159 });

const insertOld = `insert into gsc_performance_data (site_id, date, page, query, device, search_type, clicks, impressions, ctr, position)
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;
const oldParams = (r: Old) => [
  r.site_id,
  r.date,
  r.page,
  r.query,
  r.device,
  r.search_type,
  r.clicks,
  r.impressions,
  r.clicks / r.impressions,
  r.position,
];

const key = (r: { site_id: number; date: string; page: string; query: string; device: string; search_type: string }) =>
  `${r.site_id}|${r.date}|${r.page}|${r.query}|${r.device}|${r.search_type}`;

/** Sums of the old rows per (site, day number, type code, extra key). */
function sums(by: (r: Old) => string) {
  const m = new Map<string, { clicks: number; impressions: number; sum_position: number }>();
  const codes = ["web", "image", "video", "news"];
  for (const r of rows) {
    const k = `${r.site_id}|${dayNumber(r.date)}|${codes.indexOf(r.search_type) + 1}|${by(r)}`;
    const s = m.get(k) ?? { clicks: 0, impressions: 0, sum_position: 0 };
    s.clicks += r.clicks;
    s.impressions += r.impressions;
    s.sum_position += Math.round(r.position * r.impressions * 100);
    m.set(k, s);
  }
  return m;
}

type Reader = (sql: string) => Promise<Record<string, unknown>[]>;

/** The checks shared by both engines, on a database migrated past the move. */
async function expectMoved(all: Reader) {
  // Every old row through the view: same key and counts, ctr = clicks/impressions, position within sum_position's rounding.
  const view = (await all("select * from gsc_performance_data")) as unknown as (Old & { ctr: number })[];
  expect(view.length).toBe(rows.length);
  const byKey = new Map(view.map((v) => [key(v), v]));
  for (const r of rows) {
    const v = byKey.get(key(r))!;
    expect(v).toBeDefined();
    expect([Number(v.clicks), Number(v.impressions)]).toEqual([r.clicks, r.impressions]);
    expect(Number(v.ctr)).toBeCloseTo(r.clicks / r.impressions, 12);
    expect(Math.abs(Number(v.position) - r.position)).toBeLessThanOrEqual(0.005 / r.impressions + 1e-12);
  }
  expect(byKey.get(key(rows.at(-1)!))!.position).toBeCloseTo(3.14, 12);

  // Dictionaries: each site's pages and queries once.
  const pages = await all("select site_id, page from gsc_pages order by site_id, page");
  expect(pages.length).toBe(new Set(rows.map((r) => `${r.site_id}|${r.page}`)).size);
  const queries = await all("select site_id, query from gsc_queries order by site_id, query");
  expect(queries.length).toBe(new Set(rows.map((r) => `${r.site_id}|${r.query}`)).size);

  const asMap = (list: Record<string, unknown>[], k: (x: Record<string, unknown>) => string) =>
    new Map(
      list.map((x) => [k(x), { clicks: Number(x.clicks), impressions: Number(x.impressions), sum_position: Number(x.sum_position) }]),
    );
  // The day × query rollup.
  const rollup = await all(
    "select t.site_id, t.day, t.type, q.query, t.clicks, t.impressions, t.sum_position from gsc_day_query_totals t join gsc_queries q on q.id = t.query_id",
  );
  expect(asMap(rollup, (x) => `${x.site_id}|${x.day}|${x.type}|${x.query}`)).toEqual(sums((r) => r.query));
  // Property totals (country '') and page totals, summed from the detail.
  const property = await all(
    "select site_id, day, type, device, clicks, impressions, sum_position from gsc_property_totals where country = ''",
  );
  const devices = ["", "DESKTOP", "MOBILE", "TABLET"];
  expect(asMap(property, (x) => `${x.site_id}|${x.day}|${x.type}|${x.device}`)).toEqual(sums((r) => String(devices.indexOf(r.device))));
  const page = await all(
    "select t.site_id, t.day, t.type, p.page, t.device, t.clicks, t.impressions, t.sum_position from gsc_page_totals t join gsc_pages p on p.id = t.page_id",
  );
  expect(asMap(page, (x) => `${x.site_id}|${x.day}|${x.type}|${x.page}|${x.device}`)).toEqual(
    sums((r) => `${r.page}|${devices.indexOf(r.device)}`),
  );
  // Completeness: every (site, day, type) derived; final where the old completion marker was.
  const done = await all(
    "select site_id, day, type, detail_rows, data_state, derived from gsc_day_completeness order by site_id, day, type",
  );
  expect(done.length).toBe(sums(() => "").size);
  for (const d of done) {
    expect(Boolean(d.derived)).toBe(true);
    const marked = d.site_id === 1 && d.day === dayNumber("2026-03-01") && d.type === 1;
    expect([d.data_state, Number(d.detail_rows)]).toEqual([
      marked ? "final" : "provisional",
      rows.filter(
        (r) =>
          r.site_id === d.site_id && dayNumber(r.date) === d.day && ["web", "image", "video", "news"].indexOf(r.search_type) + 1 === d.type,
      ).length,
    ]);
  }
}

describe("SQLite: the in-place move of gsc_performance_data", () => {
  const before = migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir);

  function oldFile(extra: Old[] = []): string {
    const path = join(dir.dir, `old-${Math.random().toString(36).slice(2)}.db`);
    migrate(path, undefined, before);
    const c = new Database(path);
    c.run("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
    const ins = c.prepare(insertOld.replace(/\$\d+/g, "?"));
    c.transaction(() => {
      for (const r of [...rows, ...extra]) ins.run(...(oldParams(r) as (string | number)[]));
    })();
    c.run("insert into gsc_synced_days (site_id, date, search_type, row_count) values (1, '2026-03-01', 'web', 6)");
    c.close();
    return path;
  }

  test("every row moves to the compact detail and reads back through the view; rollup and derived totals add up", async () => {
    const path = oldFile();
    expect(migrate(path)).toBeGreaterThan(0);
    const c = new Database(path, { readonly: true });
    try {
      await expectMoved(async (sql) => c.query<Record<string, unknown>, []>(sql).all());
      const kinds = c
        .query<{ type: string; name: string }, []>("select type, name from sqlite_master where name like 'gsc_performance_data%'")
        .all();
      expect(kinds).toEqual([{ type: "view", name: "gsc_performance_data" }]);
      // The detail and its rollup are clustered on their key (migrations/sqlite/0016): no rowid, no separate key index.
      for (const table of ["gsc_query_detail", "gsc_day_query_totals"]) {
        expect(c.query<{ sql: string }, [string]>("select sql from sqlite_master where name = ?").get(table)!.sql).toMatch(
          /WITHOUT ROWID$/,
        );
        expect(c.query("select name from sqlite_master where type = 'index' and name like ?").all(`sqlite_autoindex_${table}%`)).toEqual(
          [],
        );
      }
    } finally {
      c.close();
    }
  });

  test("a row the move cannot convert (a date that is not YYYY-MM-DD) fails the migration: nothing changed", () => {
    const path = oldFile([{ ...rows[0]!, date: "March 4th" }]);
    expect(() => migrate(path)).toThrow(/NOT NULL constraint failed: gsc_query_detail.day/);
    const c = new Database(path, { readonly: true });
    try {
      expect(c.query<{ n: number }, []>("select count(*) as n from gsc_performance_data").get()!.n).toBe(rows.length + 1);
      expect(c.query<{ type: string }, []>("select type from sqlite_master where name = 'gsc_performance_data'").get()!.type).toBe("table");
      expect(c.query<{ n: number }, []>("select count(*) as n from gsc_query_detail").get()!.n).toBe(0);
    } finally {
      c.close();
    }
  });
});

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("PostgreSQL: the in-place move of gsc_performance_data", () => {
  const server = usePostgres();
  const before = migrationsBefore(pgMigrationsFolder, TAG.pg, dir.dir);

  async function oldDatabase(extra: Old[] = []): Promise<string> {
    const url = await server.newDatabase();
    await migratePg(url, before);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query("insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')");
      for (const r of [...rows, ...extra]) await c.query(insertOld, oldParams(r));
      await c.query("insert into gsc_synced_days (site_id, date, search_type, row_count) values (1, '2026-03-01', 'web', 6)");
    } finally {
      await c.end();
    }
    return url;
  }

  async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  test("every row moves to the compact detail and reads back through the view; rollup and derived totals add up", async () => {
    const url = await oldDatabase();
    expect(await migratePg(url)).toBeGreaterThan(0);
    await withClient(url, async (c) => {
      await expectMoved(async (sql) => (await c.query(sql)).rows);
      const kind = await c.query("select table_type from information_schema.tables where table_name = 'gsc_performance_data'");
      expect(kind.rows).toEqual([{ table_type: "VIEW" }]);
      const fns = await c.query("select proname from pg_proc where proname like 'gsc_performance_data%'");
      expect(fns.rows).toEqual([]);
    });
  });

  test("a row the move cannot convert (a date that is not YYYY-MM-DD) fails the migration: nothing changed", async () => {
    const url = await oldDatabase([{ ...rows[0]!, date: "March 4th" }]);
    await expect(migratePg(url)).rejects.toThrow();
    await withClient(url, async (c) => {
      expect(Number((await c.query("select count(*) as n from gsc_performance_data")).rows[0].n)).toBe(rows.length + 1);
      const kind = await c.query("select table_type from information_schema.tables where table_name = 'gsc_performance_data'");
      expect(kind.rows).toEqual([{ table_type: "BASE TABLE" }]);
      expect(Number((await c.query("select count(*) as n from gsc_query_detail")).rows[0].n)).toBe(0);
    });
  });
});
