import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { count, eq, sql } from "drizzle-orm";
import { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import { checkpointOwnWrites, rebuildDayQueryTotals, replaceDayDetail, rowTextIds, upsertRows, writeDayRows } from "../src/sync/data.ts";
import { deviceCode, sumPosition } from "../src/sync/grains.ts";
import { DayRows, keyRows, rollupOf } from "../src/sync/keyed-rows.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { clearStaged, stageRows } from "../src/sync/staged-day.ts";
import { KnownTextIds } from "../src/sync/text-ids.ts";
import { knownIdsOf } from "../src/sync/handlers/daily-sync.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";
import { insertSites } from "./helpers/sync.ts";

// The detail write of the sync (upsertRows) in big batches, on either engine: a batch's new pages and queries go
// into the dictionaries in one statement (SQLite) and the rows in column arrays of 20,000 (PostgreSQL UNNEST); a key
// given twice in a batch keeps its last row; a batch written again updates its rows in place.

let t: ReturnType<typeof tempDb>;
let site = 0;
let replaced = 0;
let batched = 0;
let cached = 0;
let columns = 0;
let columnsRef = 0;
beforeAll(async () => {
  t = tempDb();
  const ids = await insertSites(t.db, 6, "rows.example");
  site = ids[0]!;
  replaced = ids[1]!;
  batched = ids[2]!;
  cached = ids[3]!;
  columns = ids[4]!;
  columnsRef = ids[5]!;
});
afterAll(() => t.cleanup());

const row = (i: number, clicks: number): SourceRow => ({
  page: `https://rows.example/p${i % 300}`,
  query: `query ${i}`,
  device: ["DESKTOP", "MOBILE", "TABLET"][i % 3]!,
  clicks,
  impressions: 100,
  ctr: clicks / 100,
  position: 2.5,
});

async function stored() {
  const { gscQueryDetail: d, gscPages: p, gscQueries: q } = t.db.t;
  const [detail] = await t.db.q
    .select({ n: count(), clicks: sql<number>`sum(${d.clicks})`.mapWith(Number) })
    .from(d)
    .where(eq(d.site_id, site));
  const [pages] = await t.db.q.select({ n: count() }).from(p).where(eq(p.site_id, site));
  const [queries] = await t.db.q.select({ n: count() }).from(q).where(eq(q.site_id, site));
  return { n: detail!.n, clicks: detail!.clicks, pages: pages!.n, queries: queries!.n };
}

describe("upsertRows in big batches", () => {
  test("25,000 rows with a key given twice: every row once, the last one kept; written again: updated in place", async () => {
    const rows = Array.from({ length: 25_000 }, (_, i) => row(i, 1));
    // Row 0's key again at the end, with other numbers: the last one wins.
    rows.push(row(0, 7));
    const ids = await t.db.tx((tx) => upsertRows(tx, site, "2026-03-01", "web", rows));
    expect(ids.length).toBe(25_001);
    expect(ids[25_000]).toBe(ids[0]!);
    expect(new Set(ids).size).toBe(25_000);
    expect(await stored()).toEqual({ n: 25_000, clicks: 24_999 + 7, pages: 300, queries: 25_000 });

    // Again with other clicks and 10 new queries: the same keys updated, only the new ones added.
    const again = Array.from({ length: 25_010 }, (_, i) => row(i, 2));
    await t.db.tx((tx) => upsertRows(tx, site, "2026-03-01", "web", again));
    expect(await stored()).toEqual({ n: 25_010, clicks: 2 * 25_010, pages: 300, queries: 25_010 });
  });
});

/** A site's detail and day × query rollup of one day (web), as comparable rows in key order. */
async function dayOf(siteId: number) {
  const { gscQueryDetail: d, gscDayQueryTotals: r, gscPages: p, gscQueries: q } = t.db.t;
  const detail = await t.db.q
    .select({ page: p.page, query: q.query, device: d.device, clicks: d.clicks, impressions: d.impressions, sum_position: d.sum_position })
    .from(d)
    .innerJoin(p, eq(p.id, d.page_id))
    .innerJoin(q, eq(q.id, d.query_id))
    .where(eq(d.site_id, siteId))
    .orderBy(p.page, q.query, d.device);
  const rollup = await t.db.q
    .select({ day: r.day, type: r.type, query: q.query, clicks: r.clicks, impressions: r.impressions, sum_position: r.sum_position })
    .from(r)
    .innerJoin(q, eq(q.id, r.query_id))
    .where(eq(r.site_id, siteId))
    .orderBy(r.day, q.query);
  return { detail, rollup };
}

describe("replaceDayDetail (an atomic day's detail and rollup in one call)", () => {
  test("stores what upsertRows + rebuildDayQueryTotals store: keys given twice keep the last, queries on several pages summed; a second call replaces", async () => {
    // 3,000 rows: queries on up to 3 pages each (rollup sums), row 5's key again at the end.
    const rows = Array.from(
      { length: 3000 },
      (_, i): SourceRow => ({ ...row(i, i % 7), query: `query ${i % 1000}`, position: 1 + (i % 13) / 3 }),
    );
    rows.push({ ...rows[5]!, clicks: 99, impressions: 1234, position: 4.25 });
    const n = await t.db.tx((tx) => replaceDayDetail(tx, replaced, "2026-03-02", "web", rows));
    expect(n).toBe(3000);
    await t.db.tx((tx) => upsertRows(tx, batched, "2026-03-02", "web", rows));
    await t.db.tx((tx) => rebuildDayQueryTotals(tx, batched, "2026-03-02", "web"));
    const got = await dayOf(replaced);
    expect(got.detail.length).toBe(3000);
    expect(got.rollup.length).toBe(1000);
    expect(got.detail.find((r) => r.query === rows[5]!.query && r.page === rows[5]!.page)?.clicks).toBe(99);
    expect(got).toEqual(await dayOf(batched));

    // Replaced by a smaller day: the rows and rollup rows not in it are gone.
    const fewer = rows.slice(0, 500);
    expect(await t.db.tx((tx) => replaceDayDetail(tx, replaced, "2026-03-02", "web", fewer))).toBe(500);
    const after = await dayOf(replaced);
    expect(after.detail.length).toBe(500);
    expect(after.rollup.length).toBe(500);
    expect(after.rollup.reduce((s, r) => s + r.impressions, 0)).toBe(500 * 100);

    // Fetched again (a provisional day): some sums changed, a query gone, new queries (also on another day).
    // PostgreSQL keeps the unchanged rollup rows and writes the others: the rollup is still its detail summed.
    const again = [...fewer.slice(1, 400).map((r, i) => (i % 50 === 0 ? { ...r, clicks: r.clicks + 3 } : r)), ...rows.slice(1000, 1100)];
    expect(await t.db.tx((tx) => replaceDayDetail(tx, replaced, "2026-03-02", "web", again))).toBe(499);
    await t.db.tx((tx) => replaceDayDetail(tx, replaced, "2026-03-01", "web", rows.slice(1050, 1060)));
    const { detail, rollup } = await dayOf(replaced);
    expect(detail.length).toBe(499 + 10);
    const sums = new Map<string, { query: string; clicks: number; impressions: number; sum_position: number }>();
    for (const r of again) {
      const s = sums.get(r.query) ?? { query: r.query, clicks: 0, impressions: 0, sum_position: 0 };
      s.clicks += r.clicks;
      s.impressions += r.impressions;
      s.sum_position += sumPosition(r.position, r.impressions);
      sums.set(r.query, s);
    }
    const newestDay = Math.max(...rollup.map((r) => r.day));
    expect(rollup.filter((r) => r.day === newestDay).map(({ day, type, ...r }) => r)).toEqual(
      [...sums.values()].sort((a, b) => (a.query < b.query ? -1 : 1)),
    );
    // Each query's newest day (kept by the rollup's triggers) is still the rollup's.
    const { gscDayQueryTotals: dq, gscQueryLastDays: last } = t.db.t;
    const newest = await t.db.q
      .select({ query_id: dq.query_id, day: sql<number>`max(${dq.day})`.mapWith(Number) })
      .from(dq)
      .where(eq(dq.site_id, replaced))
      .groupBy(dq.query_id)
      .orderBy(dq.query_id);
    expect(
      await t.db.q.select({ query_id: last.query_id, day: last.day }).from(last).where(eq(last.site_id, replaced)).orderBy(last.query_id),
    ).toEqual(newest);
  });
});

describe("DayRows (a SQLite day's rows in typed columns)", () => {
  test("keyed(): the rows keyRows gives (key order, the last row of a key) and rollupOf's sums, for any id order", () => {
    // Ids out of order and far apart, keys given up to three times with other numbers.
    const ids = (n: number, mul: number) => (i: number) => ((i * mul) % n) * 1_000_003 + 7;
    const page = ids(37, 11);
    const query = ids(997, 389);
    const rows = Array.from({ length: 6000 }, (_, i) => ({
      i,
      p: page(i % 50),
      q: query(i % 1500),
      d: i % 4,
      c: i % 9,
      im: 10 + i,
      s: 3 * i,
    }));
    const day = new DayRows();
    for (const r of rows) day.push(r.p, r.q, r.d, r.c, r.im, r.s);
    const k = day.keyed();
    // keyRows over the same rows (texts standing for the ids).
    const src = rows.map(
      (r): SourceRow => ({
        page: String(r.p),
        query: String(r.q),
        device: ["", "DESKTOP", "MOBILE", "TABLET"][r.d]!,
        clicks: r.c,
        impressions: r.im,
        ctr: 0,
        position: 0,
      }),
    );
    const byText = { get: (text: string) => Number(text) };
    const want = keyRows(src, byText, byText);
    expect(k.n).toBe(want.n);
    expect(k.n).toBeLessThan(rows.length);
    expect(Array.from(k.page)).toEqual(want.page);
    expect(Array.from(k.query)).toEqual(want.query);
    expect(Array.from(k.device)).toEqual(want.device);
    expect(Array.from(k.clicks)).toEqual(want.clicks);
    expect(Array.from(k.impressions)).toEqual(want.impressions);
    // keyRows computed sum_position from the (zero) positions: compare ours with the rows' own.
    const last = new Map(rows.map((r) => [`${r.p}|${r.q}|${r.d}`, r.s]));
    expect(Array.from(k.sumPosition)).toEqual(
      Array.from({ length: k.n }, (_, i) => last.get(`${k.page[i]}|${k.query[i]}|${k.device[i]}`)!),
    );
    const sums = rollupOf(k);
    expect(Array.from(k.rollup.query)).toEqual(sums.query);
    expect(Array.from(k.rollup.clicks)).toEqual(sums.clicks);
    expect(Array.from(k.rollup.impressions)).toEqual(sums.impressions);
    expect(Array.from(k.rollup.sumPosition)).toEqual(sums.sumPosition);
    expect(new DayRows().keyed()).toMatchObject({ n: 0 });
  });

  test.skipIf(testEngine === "pg")(
    "writeDayRows stores what replaceDayDetail stores; written again it changes only the rows that differ and deletes those gone",
    async () => {
      const day = "2026-03-05";
      const rows = (v: number) =>
        Array.from(
          { length: 2000 - v * 300 },
          (_, i): SourceRow => ({ ...row(i, (i % 7) + (v && i % 3 === 0 ? 1 : 0)), query: `query ${i % 700}`, position: 1 + (i % 13) / 3 }),
        );
      const raw = asSqlite(t.db).raw.writer;
      // Rows changed by the writer connection so far.
      const changes = () => raw.query<{ n: number }, []>("select total_changes() as n").get()!.n;
      // The rows as the sync keeps a SQLite day: ids of the `columns` site, typed columns, keyed.
      const keyedDay = async (src: SourceRow[]) => {
        const { pages, queries } = await t.db.tx((tx) => rowTextIds(tx, columns, src));
        const cols = new DayRows();
        for (const r of src) {
          cols.push(
            pages.get(r.page)!,
            queries.get(r.query)!,
            deviceCode(r.device),
            r.clicks,
            r.impressions,
            sumPosition(r.position, r.impressions),
          );
        }
        return cols.keyed();
      };
      for (const v of [0, 1]) {
        const src = rows(v);
        await t.db.tx((tx) => replaceDayDetail(tx, columnsRef, day, "web", src));
        const k = await keyedDay(src);
        const before = changes();
        await t.db.tx((tx) => writeDayRows(tx, columns, 20_517, 1, k, k.rollup));
        const changed = changes() - before;
        const got = await dayOf(columns);
        expect(got).toEqual(await dayOf(columnsRef));
        expect([got.detail.length, got.rollup.length]).toEqual([src.length, 700]);
        // v0: every detail and rollup row new, and each new rollup row's trigger adds its query's newest day
        // (gsc_query_last_days, migration 0029): total_changes() counts the trigger's rows too.
        if (v === 0) expect(changed).toBe(k.n + 2 * k.rollup.query.length);
        else {
          // v1: 300 rows fewer (gone), every third row one click more (its rollup row too), the rest equal and untouched.
          const gone = 300;
          const more = src.filter((_, i) => i % 3 === 0).length;
          expect(changed).toBeGreaterThanOrEqual(gone + more);
          expect(changed).toBeLessThan(gone + more + 700 + 300);
        }
      }
      // The same day once more: nothing differs, nothing is written.
      const before = changes();
      const src = rows(1);
      const k = await keyedDay(src);
      await t.db.tx((tx) => writeDayRows(tx, columns, 20_517, 1, k));
      expect(changes() - before).toBe(0);
    },
  );
});

describe("KnownTextIds (a task's dictionary ids seen committed)", () => {
  test("known texts are not looked up; ids of a rolled-back write are not kept, so the next day's rows point at stored texts", async () => {
    const known = new KnownTextIds(cached);
    const day1 = Array.from({ length: 600 }, (_, i) => row(i, 1));
    known.discard();
    await t.db.tx((tx) => replaceDayDetail(tx, cached, "2026-03-03", "web", day1, known));
    known.committed();
    expect([known.pages.size, known.queries.size]).toEqual([300, 600]);

    // A write that adds new texts, then fails: rolled back, its ids (now free for others) must not be kept.
    const fresh = Array.from({ length: 200 }, (_, i) => ({ ...row(i, 1), query: `new query ${i}`, page: `https://rows.example/new${i}` }));
    known.discard();
    await expect(
      t.db.tx(async (tx) => {
        await rowTextIds(tx, cached, fresh, known);
        throw new Error("failed after the look-up");
      }),
    ).rejects.toThrow("failed after the look-up");
    // The next write starts with discard (as syncDay does): nothing of the failed one is kept.
    known.discard();
    known.committed();
    expect(known.queries.has("new query 0")).toBe(false);
    // Other texts take the ids the failed write had used.
    const other = Array.from({ length: 200 }, (_, i) => ({
      ...row(i, 1),
      query: `other query ${i}`,
      page: `https://rows.example/other${i}`,
    }));
    await t.db.tx((tx) => rowTextIds(tx, batched, other));

    // Day 2: day 1's texts (from the cache) and the failed write's (looked up and added now).
    const day2 = [...day1, ...fresh];
    known.discard();
    await t.db.tx((tx) => replaceDayDetail(tx, cached, "2026-03-04", "web", day2, known));
    known.committed();
    expect(known.queries.has("new query 0")).toBe(true);
    const { gscQueryDetail: d, gscPages: p, gscQueries: q } = t.db.t;
    const got = await t.db.q
      .select({ page: p.page, query: q.query })
      .from(d)
      .innerJoin(p, eq(p.id, d.page_id))
      .innerJoin(q, eq(q.id, d.query_id))
      .where(sql`${d.site_id} = ${cached} and ${d.day} = ${Math.round(Date.parse("2026-03-04") / 86_400_000)}`);
    expect(got.length).toBe(800);
    expect(new Set(got.map((r) => `${r.page} ${r.query}`))).toEqual(new Set(day2.map((r) => `${r.page} ${r.query}`)));

    // A text in the cache is taken from it, not looked up (an id planted in the cache comes back as is).
    known.queries.set("query 0", -7);
    const ids = await t.db.tx((tx) => rowTextIds(tx, cached, [row(0, 1)], known));
    expect(ids.queries.get("query 0")).toBe(-7);
  });
});

describe("knownIdsOf (the text ids a sync worker keeps from one task to the next)", () => {
  test("one cache per database handle and site: the next task of the site gets the ids the last one saw committed", () => {
    const a = knownIdsOf(t.db, cached);
    a.queries.set("query 0", 7);
    // The next task on the same handle and site: the same ids, not looked up again.
    expect(knownIdsOf(t.db, cached)).toBe(a);
    expect(knownIdsOf(t.db, cached).queries.get("query 0")).toBe(7);
    // Another database handle (another worker, another file) starts its own.
    const other = {};
    expect(knownIdsOf(other, cached)).not.toBe(a);
    expect(knownIdsOf(other, cached).queries.size).toBe(0);
    // Another site: a new cache (ids are per site); back to the first site, it starts again.
    const b = knownIdsOf(t.db, batched);
    expect(b).not.toBe(a);
    expect(b.siteId).toBe(batched);
    expect(b.queries.size).toBe(0);
    expect(knownIdsOf(t.db, cached).queries.size).toBe(0);
  });

  test("freed once no task took them for the idle time", async () => {
    const a = knownIdsOf(t.db, columns, 30);
    a.queries.set("query 0", 7);
    // Taken again within the idle time: kept (and its idle time starts again).
    expect(knownIdsOf(t.db, columns, 30)).toBe(a);
    // A timer of 30 ms fires before this one of 300 ms: the ids are gone, the next task starts afresh.
    await Bun.sleep(300);
    const b = knownIdsOf(t.db, columns);
    expect(b).not.toBe(a);
    expect(b.queries.size).toBe(0);
  });
});

describe("stageRows (a big day's batches into the staging)", () => {
  test("a key given twice in a batch keeps its last row, one given again in a later batch is updated; rows in any order", async () => {
    const taskId = 987_654;
    // 1,000 rows in no key order (as Google sends them: by clicks), row 3's key again at the end.
    const batch = Array.from({ length: 1000 }, (_, i) => row((i * 7919) % 1000, i % 5));
    batch.push(row(3, 42));
    await t.db.tx((tx) => stageRows(tx, taskId, batched, batch));
    await t.db.tx((tx) => stageRows(tx, taskId, batched, [row(4, 77), row(1000, 1)]));
    const { gscQueries: q, gscStagedDetail: st } = t.db.t;
    const rows = await t.db.q
      .select({ query: q.query, clicks: st.clicks })
      .from(st)
      .innerJoin(q, eq(q.id, st.query_id))
      .where(eq(st.task_id, taskId));
    expect(rows.length).toBe(1001);
    const clicks = new Map(rows.map((r) => [r.query, r.clicks]));
    expect(clicks.get("query 3")).toBe(42);
    expect(clicks.get("query 4")).toBe(77);
    expect(clicks.get("query 999")).toBe(batch.find((r) => r.query === "query 999")!.clicks);
    await t.db.tx((tx) => clearStaged(tx, taskId));
  });
});

describe("checkpointOwnWrites (the sync worker copies its WAL into the file itself)", () => {
  test.skipIf(testEngine === "pg")(
    "with the writer's auto-checkpoint off, the day's pages reach the file only once it runs; run again, nothing left to copy",
    async () => {
      const own = tempDb({ pragmas: { walAutocheckpoint: 0 } });
      try {
        const [id] = await insertSites(own.db, 1, "ckpt.example");
        const size = () => statSync(own.path).size;
        const before = size();
        await own.db.tx((tx) =>
          upsertRows(
            tx,
            id!,
            "2026-03-05",
            "web",
            Array.from({ length: 5000 }, (_, i) => row(i, i % 7)),
          ),
        );
        // Written: in the WAL, not in the file.
        expect(size()).toBe(before);
        await checkpointOwnWrites(own.db);
        const after = size();
        expect(after).toBeGreaterThan(before);
        // Another connection finds every frame copied already.
        const other = new Database(own.path);
        const [busy, log, copied] = Object.values(other.query("PRAGMA wal_checkpoint(PASSIVE)").get() as object) as number[];
        other.close();
        expect(busy).toBe(0);
        expect(copied).toBe(log);
        await checkpointOwnWrites(own.db);
        expect(size()).toBe(after);
      } finally {
        await own.cleanup();
      }
    },
  );

  test.skipIf(testEngine === "pg")(
    "a copy asked for while one runs (it runs on a thread of its own) copies what was written meanwhile too",
    async () => {
      const own = tempDb({ pragmas: { walAutocheckpoint: 0 } });
      try {
        const [id] = await insertSites(own.db, 1, "ckpt2.example");
        const day = (date: string) =>
          own.db.tx((tx) =>
            upsertRows(
              tx,
              id!,
              date,
              "web",
              Array.from({ length: 3000 }, (_, i) => row(i, i % 5)),
            ),
          );
        await day("2026-03-06");
        const first = checkpointOwnWrites(own.db);
        await day("2026-03-07");
        const second = checkpointOwnWrites(own.db);
        await Promise.all([first, second]);
        const other = new Database(own.path);
        const [busy, log, copied] = Object.values(other.query("PRAGMA wal_checkpoint(PASSIVE)").get() as object) as number[];
        other.close();
        expect(busy).toBe(0);
        expect(log).toBeGreaterThan(0);
        expect(copied).toBe(log);
      } finally {
        await own.cleanup();
      }
    },
  );
});
