import { Database } from "bun:sqlite";
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { readQuerySums } from "../src/analytics/query-sums.ts";
import { encodeDaySums } from "../src/sync/day-sums.ts";
import { budgetOf, withBudget } from "../src/db/budget.ts";
import { apiErrorOf } from "../src/errors.ts";
import { typeCode } from "../src/sync/grains.ts";
import { openDb, type Db } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { migrationsBefore, pgFixtureBefore } from "./helpers/migrations.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";
import { addSite, deleteRows, storeRows } from "./helpers/rows.ts";
import { asSqlite, tempDb, tempDir } from "./helpers/db.ts";

// The day × query rollup packed one row per (site, day, type) (gsc_day_query_sums: migrations sqlite 0030 / pg 0024,
// issue 18): the migration fills it from a database with data byte for byte as the sync's encoder writes it, the
// sync keeps it (a day stored again or rows deleted), and readQuerySums gives every query's sums per period as
// the rollup does.

setDefaultTimeout(60_000);
const dir = tempDir("sitesync-day-query-sums-");
afterAll(() => dir.cleanup());
const TAG = { sqlite: "0030_day_query_sums", pg: "0024_day_query_sums" };
const DAYS = [20400, 20401, 20402, 20403, 20404, 20405];

/** Two sites' detail over six days and three types (values spanning 1- to 6-byte varints, query ids with big gaps), and its rollup. */
function fixtureSql(): string[] {
  const out: string[] = [
    "insert into sites (id, domain, name) values (1, 'a.example', 'A'), (2, 'b.example', 'B')",
    "insert into gsc_pages (id, site_id, page) values (1, 1, 'https://a.example/x'), (2, 1, 'https://a.example/y'), (3, 2, 'https://b.example/z')",
  ];
  const ids = [1, 2, 3, 200, 20_000, 3_000_000, 3_000_001, 9, 10, 11];
  out.push(`insert into gsc_queries (id, site_id, query) values ${ids.map((q, i) => `(${q}, ${i < 7 ? 1 : 2}, 'q${q}')`).join(", ")}`);
  const detail: string[] = [];
  for (const [site, pages, qs] of [
    [1, [1, 2], ids.slice(0, 7)],
    [2, [3], ids.slice(7)],
  ] as const)
    for (const day of DAYS)
      for (const type of [1, 2, 3])
        for (const page of pages)
          for (const q of qs)
            for (const device of [1, 2]) {
              if ((q * 7 + day + type * 3 + page + device * 5) % 4 === 0) continue;
              const v = ((q % 97) + device + type + (day % 5)) * (q % 3 === 0 ? 1 : q % 3 === 1 ? 300 : 70_000);
              detail.push(`(${site}, ${day}, ${type}, ${page}, ${q}, ${device}, ${v % 100}, ${v}, ${v * 12_345})`);
            }
  out.push(
    `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) values ${detail.join(", ")}`,
  );
  out.push(`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
    select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position) from gsc_query_detail group by site_id, day, type, query_id`);
  return out;
}

const rollupSql = `select site_id, day, type, query_id, clicks, impressions, sum_position from gsc_day_query_totals order by 1, 2, 3, 4`;
const packedSql = "select site_id, day, type, queries, data from gsc_day_query_sums order by 1, 2, 3";

/** The packed rows the sync's encoder writes for rollup rows (site, day, type, query, clicks, impressions, sum_position). */
function encodedOf(rollup: number[][]) {
  const days = new Map<string, number[][]>();
  for (const r of rollup) days.set(`${r[0]}|${r[1]}|${r[2]}`, [...(days.get(`${r[0]}|${r[1]}|${r[2]}`) ?? []), r]);
  return [...days.values()].map((rs) => ({
    site_id: rs[0]![0]!,
    day: rs[0]![1]!,
    type: rs[0]![2]!,
    queries: rs.length,
    data: [
      ...encodeDaySums({
        query: rs.map((r) => r[3]!),
        clicks: rs.map((r) => r[4]!),
        impressions: rs.map((r) => r[5]!),
        sumPosition: rs.map((r) => r[6]!),
      }),
    ],
  }));
}

const asPlain = (rows: Record<string, unknown>[]) =>
  rows.map((r) => ({
    site_id: Number(r.site_id),
    day: Number(r.day),
    type: Number(r.type),
    queries: Number(r.queries),
    data: [...(r.data as Uint8Array)],
  }));

/** readQuerySums' answer for two periods against the rollup's sums over the same days, per query. */
async function expectSumsAsRollup(db: Db, rollup: number[][], siteId: number, type: number | null, periods: [number, number][]) {
  const got = await readQuerySums(db, siteId, type, periods);
  const want = new Map<number, number[]>();
  for (const r of rollup) {
    if (r[0] !== siteId || (type !== null && r[2] !== type)) continue;
    periods.forEach(([a, b], k) => {
      if (r[1]! < a || r[1]! > b) return;
      const w =
        want.get(r[3]!) ??
        want
          .set(
            r[3]!,
            periods.flatMap(() => [0, 0, 0, 0]),
          )
          .get(r[3]!)!;
      for (let j = 0; j < 3; j++) w[k * 4 + j] = w[k * 4 + j]! + r[4 + j]!;
      w[k * 4 + 3] = w[k * 4 + 3]! + 1;
    });
  }
  const rows = [...want.entries()].sort((a, b) => a[0] - b[0]);
  expect([...got.id]).toEqual(rows.map((r) => r[0]));
  expect(
    [...got.id].map((_, j) =>
      periods.flatMap((_, k) => [got.clicks[k]![j], got.impressions[k]![j], got.sumPosition[k]![j], got.days[k]![j]]),
    ),
  ).toEqual(rows.map((r) => r[1]));
}

describe("SQLite: gsc_day_query_sums filled by its migration", () => {
  test("one row per (site, day, type) of the rollup, byte for byte the sync's encoding; readQuerySums sums as the rollup", async () => {
    const path = join(dir.dir, "old.db");
    migrate(path, undefined, migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir));
    const old = new Database(path);
    for (const s of fixtureSql()) old.run(s);
    old.close();
    migrate(path);
    const file = new Database(path, { readonly: true });
    const rollup = file.query(rollupSql).values() as number[][];
    const packed = asPlain(file.query(packedSql).all() as Record<string, unknown>[]);
    file.close();
    expect(packed.length).toBe(2 * DAYS.length * 3);
    expect(packed).toEqual(encodedOf(rollup));
    const db = openDb({ path, role: "test" });
    try {
      await expectSumsAsRollup(db, rollup, 1, 1, [
        [DAYS[0]!, DAYS[2]!],
        [DAYS[3]!, DAYS[5]!],
      ]);
      await expectSumsAsRollup(db, rollup, 2, null, [[DAYS[1]!, DAYS[4]!]]);
      // The span of ids summed in arrays comes from the newest-day rows: ids missing there (the highest of site 2, then
      // all of its type 1) make the read run again over the dictionary's span, with the same sums.
      // (The reader shares one snapshot per event-loop turn: a turn passes after each write.)
      const write = async (sql: string) => {
        asSqlite(db).raw.writer.run(sql);
        await new Promise((r) => setImmediate(r));
      };
      await write("delete from gsc_query_last_days where site_id = 2 and query_id = 11");
      await expectSumsAsRollup(db, rollup, 2, null, [[DAYS[1]!, DAYS[4]!]]);
      await write("delete from gsc_query_last_days where site_id = 2 and type = 1");
      await expectSumsAsRollup(db, rollup, 2, 1, [
        [DAYS[0]!, DAYS[1]!],
        [DAYS[2]!, DAYS[5]!],
      ]);
    } finally {
      db.close();
    }
  });
});

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("PostgreSQL: gsc_day_query_sums filled by its migration", () => {
  const server = usePostgres();

  test("one row per (site, day, type) of the rollup, byte for byte the sync's encoding", async () => {
    const url = await server.newDatabase();
    const c = await pgFixtureBefore(url, TAG.pg, fixtureSql(), dir.dir);
    try {
      await migratePg(url);
      const rollup: number[][] = (await c.query(rollupSql)).rows.map((r) => Object.values(r).map(Number));
      const packed = asPlain((await c.query(packedSql)).rows);
      expect(packed.length).toBe(2 * DAYS.length * 3);
      expect(packed).toEqual(encodedOf(rollup));
    } finally {
      await c.end();
    }
  });
});

describe("the sync keeps gsc_day_query_sums", () => {
  test("a day stored, stored again with other rows, and rows deleted: the day's packed row is its rollup's encoding", async () => {
    const t = tempDb();
    try {
      const db = t.db;
      const site = await addSite(db, "sc-domain:sums.example", "s");
      const row = (page: string, query: string, device: string, clicks: number, impressions: number, position: number) => ({
        page: `https://sums.example/${page}`,
        query,
        device,
        clicks,
        impressions,
        ctr: 0,
        position,
      });
      const expectPackedAsRollup = async () => {
        const r = db.t.gscDayQueryTotals;
        const rows = (await db.q.select().from(r)).map((x) => [
          x.site_id,
          x.day,
          x.type,
          x.query_id,
          Number(x.clicks),
          Number(x.impressions),
          Number(x.sum_position),
        ]);
        rows.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]! || a[3]! - b[3]!);
        const packed = asPlain((await db.q.select().from(db.t.gscDayQuerySums)) as Record<string, unknown>[]).sort(
          (a, b) => a.day - b.day || a.type - b.type,
        );
        expect(packed).toEqual(encodedOf(rows));
        return rows.length;
      };
      await storeRows(db, site, "2026-03-01", "web", [
        row("a", "alpha", "MOBILE", 3, 40, 2.5),
        row("b", "alpha", "DESKTOP", 1, 9, 7.25),
        row("a", "beta", "MOBILE", 0, 120_000, 11.5),
      ]);
      await storeRows(db, site, "2026-03-02", "web", [row("a", "gamma", "MOBILE", 2, 5, 1)]);
      expect(await expectPackedAsRollup()).toBe(3);
      const ids = await storeRows(db, site, "2026-03-01", "web", [
        row("c", "delta", "TABLET", 5, 50, 3),
        row("a", "alpha", "MOBILE", 4, 41, 2),
      ]);
      expect(await expectPackedAsRollup()).toBe(4);
      await deleteRows(db, ids.slice(0, 1));
      expect(await expectPackedAsRollup()).toBe(3);
      await deleteRows(db, await storeRows(db, site, "2026-03-02", "web", [row("a", "gamma", "MOBILE", 2, 5, 1)]));
      expect(await expectPackedAsRollup()).toBe(2);
    } finally {
      await t.cleanup();
    }
  });
});

describe("readQuerySums within the request's bounds", () => {
  // On SQLite the packed rows are read in the HTTP worker itself (no query process for the time limit to kill):
  // a request whose time is spent, or whose client left, stops at its next slice of days.
  test("a spent time limit answers 504 query_timeout, a client gone 499 client_closed; within bounds it reads", async () => {
    const t = tempDb();
    try {
      const db = t.db;
      const site = await addSite(db, "sc-domain:bounded.example", "s");
      for (let d = 1; d <= 9; d++)
        await storeRows(db, site, `2026-03-0${d}`, "web", [
          { page: "https://bounded.example/a", query: `q${d}`, device: "MOBILE", clicks: d, impressions: 10 * d, ctr: 0, position: 2 },
        ]);
      const [first] = (await db.q.select().from(db.t.gscDayQuerySums)).map((r) => Number(r.day)).sort((a, b) => a - b);
      const periods: [number, number][] = [[first!, first! + 8]];
      const caps = { maxRows: 1000, maxBytes: 1 << 20 };
      const codeOf = async (p: Promise<unknown>) =>
        apiErrorOf(
          await p.then(
            () => null,
            (e: unknown) => e,
          ),
        )?.code ?? "answered";
      expect(await codeOf(withBudget(budgetOf({ timeoutMs: 0, ...caps }), () => readQuerySums(db, site, typeCode("web"), periods)))).toBe(
        "query_timeout",
      );
      const gone = new AbortController();
      gone.abort();
      expect(
        await codeOf(
          withBudget(budgetOf({ timeoutMs: 60_000, signal: gone.signal, ...caps }), () =>
            readQuerySums(db, site, typeCode("web"), periods),
          ),
        ),
      ).toBe("client_closed");
      expect(
        await codeOf(withBudget(budgetOf({ timeoutMs: 60_000, ...caps }), () => readQuerySums(db, site, typeCode("web"), periods))),
      ).toBe("answered");
    } finally {
      await t.cleanup();
    }
  });
});
