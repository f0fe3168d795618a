// Report rollups kept at ingest (issue 18, src/sync/rollups.ts): each answer read from a rollup equals the
// answer computed from the query detail, on the suite's engine; the migration's backfill of a database that
// already holds data gives the same rollup rows as the sync's day-by-day refresh (both engines).
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { findPerformanceTrends } from "../src/analytics/queries.ts";
import { countPages, findPageTotals, findPageWeekSeries, findUngrainedDays, setPageCountBySeeks } from "../src/analytics/totals.ts";
import { comparePeriods, findBrandSplit, findCannibalization, findOverview, findTop, metricsOf, rounded } from "../src/insights/queries.ts";
import { comparePeriodsBy, comparePeriodTotals, searchKeywords } from "../src/mcp/queries.ts";
import type { Db } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate, migrationsFolder } from "../src/db/sqlite/migrate.ts";
import { defaultPragmas } from "../src/db/sqlite/open.ts";
import { addDays } from "../src/sync/dates.ts";
import { replaceDayDetail } from "../src/sync/data.ts";
import { dayDate, dayNumber, typeCode } from "../src/sync/grains.ts";
import { type PageTotal, replaceDayGrains, upsertPageIds } from "../src/sync/grain-writes.ts";
import { moveDayPageWeek, refreshDayRollups, splitWeeks } from "../src/sync/rollups.ts";
import type { SearchType, SourceRow } from "../src/sync/source.ts";
import { tempDb, tempDir } from "./helpers/db.ts";
import { migrationsBefore, pgFixtureBefore } from "./helpers/migrations.ts";
import { pgRunsToo, postgresSkipReason, usePostgres } from "./helpers/postgres.ts";
import { addSite, storePageTotals } from "./helpers/rows.ts";

const DEVICES = ["DESKTOP", "MOBILE", "TABLET"] as const;

/** Deterministic rows of one day and type: overlapping queries across pages, devices, types and days. */
function dayRows(seed: number, n: number): SourceRow[] {
  let x = seed * 2654435761;
  const rand = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  return Array.from({ length: n }, () => {
    const impressions = 1 + Math.floor(rand() * 50);
    return {
      page: `https://rollups.example/p${Math.floor(rand() * 6)}`,
      query: `q${Math.floor(rand() * rand() * 40)}`,
      device: DEVICES[Math.floor(rand() * 3)]!,
      clicks: Math.floor(rand() * impressions),
      impressions,
      ctr: 0,
      position: 1 + Math.round(rand() * 300) / 10,
    };
  });
}

const END = "2026-10-31";
const TYPES: SearchType[] = ["web", "image"];

/** Writes `days` days of both types as the sync's day switch does (detail + rollup, then the report rollups). */
async function writeDays(db: Db, siteId: number, days: number, seed = 0) {
  for (let i = 0; i < days; i++) {
    const day = addDays(END, -i);
    for (const type of TYPES) {
      await db.tx(async (tx) => {
        await replaceDayDetail(tx, siteId, day, type, dayRows(seed + i * 10 + typeCode(type), 30 + ((i * 7) % 25)));
        await refreshDayRollups(tx, siteId, dayNumber(day), typeCode(type));
      });
    }
  }
}

/** The named queries per day computed from the detail itself (the answer before the rollup). */
async function detailCounts(db: Db, siteId: number, types: number[], device: number | null): Promise<Map<number, number>> {
  const q = `select day, count(distinct query_id) as n from gsc_query_detail where site_id = ${siteId}
    and type in (${types.join(",")})${device ? ` and device = ${device}` : ""} group by day`;
  const rows =
    db.engine === "pg"
      ? (await db.pg!.pool.query<{ day: number; n: string }>(q)).rows
      : db.raw.reader.query<{ day: number; n: number }, []>(q).all();
  return new Map(rows.map((r) => [Number(r.day), Number(r.n)]));
}

describe("rollups kept at ingest equal the detail's answers", () => {
  let t: ReturnType<typeof tempDb>;
  let db: Db;
  let siteId: number;
  beforeAll(async () => {
    t = tempDb();
    db = t.db;
    siteId = await addSite(db, "sc-domain:rollups.example", "r");
    await writeDays(db, siteId, 10);
    // A day fetched again with other rows (fewer queries): its counts follow.
    await writeDays(db, siteId, 1, 999);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  for (const searchType of ["web", "image", "all"] as const) {
    for (const device of [null, "DESKTOP", "MOBILE", "TABLET"] as const) {
      test(`trends' named queries per day: ${searchType}, device ${device ?? "any"}`, async () => {
        const trends = await findPerformanceTrends(db, siteId, 10, { searchType, device });
        const types = searchType === "all" ? [1, 2, 3, 4, 5, 6] : [typeCode(searchType)];
        const want = await detailCounts(db, siteId, types, device ? DEVICES.indexOf(device) + 1 : null);
        expect(trends.data).toHaveLength(10);
        const got = new Map(trends.data.map((r) => [dayNumber(r.date), r.unique_queries]));
        expect(got).toEqual(want);
        expect(trends.summary.unique_queries).toBe([...want.values()].reduce((a, b) => a + b, 0));
      });
    }
  }

  test("trends' named queries per day over every type: days with one type's rows and days with several", async () => {
    const site = await addSite(db, "sc-domain:rollups-types.example", "rt");
    const days: [string, SearchType[]][] = [
      [addDays(END, -2), ["web"]],
      [addDays(END, -1), ["web", "image"]],
      [END, ["image"]],
    ];
    for (const [i, [day, types]] of days.entries())
      for (const type of types)
        await db.tx(async (tx) => {
          await replaceDayDetail(tx, site, day, type, dayRows(70 + i * 10 + typeCode(type), 40));
          await refreshDayRollups(tx, site, dayNumber(day), typeCode(type));
        });
    const trends = await findPerformanceTrends(db, site, 3, { searchType: "all" });
    const want = await detailCounts(db, site, [1, 2, 3, 4, 5, 6], null);
    expect(new Map(trends.data.map((r) => [dayNumber(r.date), r.unique_queries]))).toEqual(want);
    expect(want.size).toBe(3);
  });

  // Page totals summed per page id, the URL joined afterwards: the same pages, sums and order as summing
  // each row with its URL. Days without grains are derived from the detail (the union's second half).
  test("page totals: grain rows and derived days, every option, equal the rows summed by URL", async () => {
    const other = await addSite(db, "sc-domain:pages.example", "p");
    const all: { page: string; clicks: number; impressions: number; sp: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const rows = dayRows(500 + i, 40).map((r, k) => ({
        page: r.page.replace("rollups", "pages"),
        country: ["usa", "fra", ""][k % 3]!,
        device: r.device,
        clicks: r.clicks,
        impressions: r.impressions,
        position: r.position,
      }));
      // One key per (page, country, device) and day, as Google sends page totals.
      const byKey = new Map(rows.map((r) => [`${r.page}|${r.country}|${r.device}`, r]));
      if (i === 0)
        // Two pages tied on clicks and impressions (the URL orders them), one with impressions only, one with nothing.
        for (const [page, clicks, impressions] of [
          ["https://pages.example/t-b", 5000, 9000],
          ["https://pages.example/t-a", 5000, 9000],
          ["https://pages.example/imp", 0, 3],
          ["https://pages.example/zero", 0, 0],
        ] as const)
          byKey.set(page, { page, country: "usa", device: "MOBILE", clicks, impressions, position: 2 });
      await storePageTotals(db, other, addDays(END, -i), "web", [...byKey.values()]);
      for (const r of byKey.values())
        all.push({ page: r.page, clicks: r.clicks, impressions: r.impressions, sp: Math.round(r.position * r.impressions * 100) });
    }
    const sumBy = (rows: typeof all, keep: (page: string) => boolean) => {
      const m = new Map<string, { page: string; clicks: number; impressions: number; sumPosition: number }>();
      for (const r of rows.filter((x) => keep(x.page))) {
        const s = m.get(r.page) ?? { page: r.page, clicks: 0, impressions: 0, sumPosition: 0 };
        s.clicks += r.clicks;
        s.impressions += r.impressions;
        s.sumPosition += r.sp;
        m.set(r.page, s);
      }
      return [...m.values()]
        .filter((s) => s.clicks > 0 || s.impressions > 0)
        .sort((a, b) => b.clicks - a.clicks || b.impressions - a.impressions || (a.page < b.page ? -1 : 1));
    };
    const f = { siteId: other, start: addDays(END, -5), end: END, searchType: "web" as const };
    expect(await findPageTotals(db, f)).toEqual(sumBy(all, () => true));
    expect(await findPageTotals(db, f, { limit: 2 })).toEqual(sumBy(all, () => true).slice(0, 2));
    const two = ["https://pages.example/p1", "https://pages.example/p4"];
    expect(await findPageTotals(db, f, { pages: two })).toEqual(sumBy(all, (p) => two.includes(p)));
    expect(await findPageTotals(db, f, { urlContains: "p3" })).toEqual(sumBy(all, (p) => p.includes("p3")));
    expect(await countPages(db, f)).toBe(sumBy(all, () => true).length);

    // The first site's days have no grains: its page totals are derived from the detail.
    const detail = await (async () => {
      const q = `select p.page as page, d.clicks as clicks, d.impressions as impressions, d.sum_position as sp
        from gsc_query_detail d join gsc_pages p on p.id = d.page_id where d.site_id = ${siteId} and d.type = 1`;
      const rows = db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all();
      return (rows as typeof all).map((r) => ({
        page: r.page,
        clicks: Number(r.clicks),
        impressions: Number(r.impressions),
        sp: Number(r.sp),
      }));
    })();
    const g = { siteId, start: addDays(END, -9), end: END, searchType: "web" as const };
    expect(await findPageTotals(db, g)).toEqual(sumBy(detail, () => true));
    expect(await countPages(db, g)).toBe(sumBy(detail, () => true).length);
    expect(await findPageTotals(db, g, { pages: two.map((p) => p.replace("pages", "rollups")) })).toEqual(
      sumBy(detail, (p) => two.map((x) => x.replace("pages", "rollups")).includes(p)),
    );
  });

  // Weekly page totals (gsc_week_page_totals, kept by replaceDayGrains): a window's whole weeks from the rollup,
  // its edge days from the day rows. Every window shape (no whole week, aligned, edges on either side) answers
  // what the day rows summed by URL answer, after days fetched again with other rows and a day emptied.
  test("weekly page totals: every window, type and option equals the day rows summed by URL", async () => {
    const site = await addSite(db, "sc-domain:weeks.example", "w");
    const urls = Array.from({ length: 9 }, (_, i) => `https://weeks.example/${i % 3 === 0 ? "blog/" : ""}p${i}`);
    const ids = await db.tx((tx) => upsertPageIds(tx, site, urls));
    const stored: {
      day: number;
      type: number;
      page: string;
      country: string;
      device: number;
      clicks: number;
      impressions: number;
      sp: number;
    }[] = [];
    const store = async (day: number, type: number, seed: number, n: number) => {
      let x = seed;
      const rand = () => {
        x = (x * 1103515245 + 12345) % 2147483648;
        return x / 2147483648;
      };
      const byKey = new Map<string, PageTotal & { page: string }>();
      for (let k = 0; k < n; k++) {
        const page = urls[Math.floor(rand() * urls.length)]!;
        const country = ["usa", "fra", ""][Math.floor(rand() * 3)]!;
        const device = 1 + Math.floor(rand() * 3);
        const impressions = Math.floor(rand() * 40);
        const clicks = Math.floor(rand() * (impressions + 1));
        byKey.set(`${page}|${country}|${device}`, {
          page,
          page_id: ids.get(page)!,
          country,
          device,
          clicks,
          impressions,
          sum_position: impressions * (100 + k),
        });
      }
      const page = [...byKey.values()];
      await db.tx((tx) =>
        replaceDayGrains(tx, {
          siteId: site,
          day,
          type,
          property: [{ country: "", device: 0, clicks: 1, impressions: 1, sum_position: 100 }],
          page: page.map(({ page: _p, ...r }) => r),
          appearance: [],
          completeness: {
            property_rows: 1,
            page_rows: page.length,
            detail_rows: 0,
            appearance_rows: 0,
            page_truncated: false,
            detail_truncated: false,
            anonymized_share: null,
            data_state: "final",
          },
        }),
      );
      for (let i = stored.length - 1; i >= 0; i--) if (stored[i]!.day === day && stored[i]!.type === type) stored.splice(i, 1);
      for (const r of page)
        stored.push({
          day,
          type,
          page: r.page,
          country: r.country,
          device: r.device,
          clicks: r.clicks,
          impressions: r.impressions,
          sp: r.sum_position,
        });
    };
    const last = dayNumber(END);
    for (let i = 0; i < 40; i++) for (const type of [1, 2]) await store(last - i, type, 7 + i * 3 + type, 4 + ((i * 5) % 13));
    // Fetched again: other rows (fewer and more keys), and a day left with no page rows at all.
    for (const [i, n] of [
      [3, 2],
      [10, 15],
      [17, 0],
      [25, 6],
    ] as const)
      await store(last - i, 1, 900 + i, n);
    const sumBy = (keep: (r: (typeof stored)[number]) => boolean) => {
      const m = new Map<string, { page: string; clicks: number; impressions: number; sumPosition: number }>();
      for (const r of stored.filter(keep)) {
        const t = m.get(r.page) ?? { page: r.page, clicks: 0, impressions: 0, sumPosition: 0 };
        t.clicks += r.clicks;
        t.impressions += r.impressions;
        t.sumPosition += r.sp;
        m.set(r.page, t);
      }
      return [...m.values()]
        .filter((t) => t.clicks > 0 || t.impressions > 0)
        .sort((a, b) => b.clicks - a.clicks || b.impressions - a.impressions || (a.page < b.page ? -1 : 1));
    };
    let weekly = 0;
    for (const from of [0, 2, 4, 9]) {
      for (const len of [1, 6, 7, 8, 15, 27]) {
        const lo = last - 39 + from;
        const hi = lo + len - 1;
        if (hi > last) continue;
        if (splitWeeks(lo, hi)) weekly++;
        const inWindow = (r: (typeof stored)[number]) => r.day >= lo && r.day <= hi;
        const f = { siteId: site, start: dayDate(lo), end: dayDate(hi) };
        for (const searchType of ["web", "image", "all"] as const) {
          const types = searchType === "all" ? [1, 2] : [typeCode(searchType)];
          const want = sumBy((r) => inWindow(r) && types.includes(r.type));
          expect(await findPageTotals(db, { ...f, searchType })).toEqual(want);
          expect(await countPages(db, { ...f, searchType })).toBe(want.length);
          // By the weeks' rows and by a seek per page of the site (each engine), the same count.
          for (const mode of ["always", "never"] as const) {
            setPageCountBySeeks(mode);
            expect({ mode, lo, hi, searchType, n: await countPages(db, { ...f, searchType }) }).toEqual({
              mode,
              lo,
              hi,
              searchType,
              n: want.length,
            });
          }
          setPageCountBySeeks("auto");
        }
        const web = (r: (typeof stored)[number]) => inWindow(r) && r.type === 1;
        expect(await findPageTotals(db, { ...f, searchType: "web" }, { limit: 3, order: "impressions" })).toEqual(
          sumBy(web)
            .sort((a, b) => b.impressions - a.impressions || b.clicks - a.clicks || (a.page < b.page ? -1 : 1))
            .slice(0, 3),
        );
        expect(await findPageTotals(db, { ...f, searchType: "web" }, { pages: [urls[1]!, urls[3]!] })).toEqual(
          sumBy((r) => web(r) && [urls[1], urls[3]].includes(r.page)),
        );
        expect(await findPageTotals(db, { ...f, searchType: "web" }, { urlContains: "blog/" })).toEqual(
          sumBy((r) => web(r) && r.page.includes("blog/")),
        );
        // Device and country: the day rows (the weekly rollup has neither).
        expect(await findPageTotals(db, { ...f, searchType: "web", device: "MOBILE" })).toEqual(sumBy((r) => web(r) && r.device === 2));
        expect(await countPages(db, { ...f, searchType: "web", device: "MOBILE" })).toBe(sumBy((r) => web(r) && r.device === 2).length);
        expect(await findPageTotals(db, { ...f, searchType: "web", country: "fra" })).toEqual(sumBy((r) => web(r) && r.country === "fra"));
      }
    }
    expect(weekly).toBeGreaterThanOrEqual(10);
    // Clicks per 7-day span (content decay): the weekly rollup plus or minus the days the spans are shifted by, at every
    // offset from a week's first day, equal the day rows summed per span; with a device, the day rows.
    const bySpan = (a: { page: string; clicks: number[] }, b: { page: string; clicks: number[] }) =>
      b.clicks[0]! - b.clicks.at(-1)! - (a.clicks[0]! - a.clicks.at(-1)!) || (a.page < b.page ? -1 : 1);
    for (let from = 0; from <= 10; from++) {
      const lo = last - 38 + from;
      for (const [searchType, device, keep] of [
        ["web", null, { minFirst: 1, maxLastShare: 1 }],
        ["all", null, { minFirst: 5, maxLastShare: 0.5 }],
        ["web", "MOBILE", { minFirst: 1, maxLastShare: 1 }],
      ] as const) {
        const types = searchType === "all" ? [1, 2] : [1];
        const spans = new Map<string, number[]>();
        for (const r of stored) {
          const k = Math.floor((r.day - lo) / 7);
          if (r.day < lo || k >= 4 || !types.includes(r.type) || (device && r.device !== 2)) continue;
          const c = spans.get(r.page) ?? spans.set(r.page, [0, 0, 0, 0]).get(r.page)!;
          c[k]! += r.clicks;
        }
        const want = [...spans.entries()]
          .map(([page, clicks]) => ({ page, clicks }))
          .filter((p) => p.clicks[0]! >= keep.minFirst && p.clicks[3]! <= p.clicks[0]! * keep.maxLastShare)
          .sort(bySpan);
        const f = { siteId: site, start: dayDate(lo), end: dayDate(lo + 27), searchType, device };
        expect({ from, searchType, device, got: (await findPageWeekSeries(db, f, 4, keep)).sort(bySpan) }).toEqual({
          from,
          searchType,
          device,
          got: want,
        });
        // The first-span filter at a page's exact first-span clicks keeps it (PostgreSQL reads the first span on its own).
        for (const at of [want[0]?.clicks[0], want[want.length >> 1]?.clicks[0]]) {
          if (at === undefined || at < 1) continue;
          const strict = { minFirst: at, maxLastShare: keep.maxLastShare };
          expect({ from, searchType, device, at, got: (await findPageWeekSeries(db, f, 4, strict)).sort(bySpan) }).toEqual({
            from,
            searchType,
            device,
            at,
            got: want.filter((p) => p.clicks[0]! >= at),
          });
        }
      }
    }
    // MCP compare_periods by page (both periods' page totals merged per page in one statement, the first `limit`
    // by clicks change): what each period's page totals (checked above) merged by URL give, both orders.
    for (const [lo, mid, hi] of [
      [last - 39, last - 30, last - 20],
      [last - 27, last - 13, last],
    ] as const) {
      const period1 = { start: dayDate(lo), end: dayDate(mid - 1) };
      const period2 = { start: dayDate(mid), end: dayDate(hi) };
      for (const searchType of ["web", "all"] as const) {
        const [p1, p2] = await Promise.all([
          findPageTotals(db, { siteId: site, searchType, ...period1 }),
          findPageTotals(db, { siteId: site, searchType, ...period2 }),
        ]);
        const zero = { clicks: 0, impressions: 0 };
        const both = new Map<string, [{ clicks: number; impressions: number }, { clicks: number; impressions: number }]>();
        for (const p of p1) both.set(p.page, [p, zero]);
        for (const p of p2) both.set(p.page, [both.get(p.page)?.[0] ?? zero, p]);
        for (const order of ["losers_first", "gainers_first"] as const)
          for (const limit of [1, 3, 20]) {
            const sign = order === "losers_first" ? 1 : -1;
            const want = [...both]
              .map(([page, [a, b]]): [string, number, number, number] => [page, b.clicks - a.clicks, a.impressions, b.impressions])
              .sort((x, y) => sign * (x[1] - y[1]) || (x[0] < y[0] ? -1 : 1))
              .slice(0, limit);
            const got = await comparePeriodsBy(db, { siteId: site, searchType, period1, period2, by: "page", order, limit });
            expect(got.map((r) => [r.key, r.clicks_change, r.period1_impressions, r.period2_impressions])).toEqual(want);
          }
        // Insights compare by page (both periods' sums by page id in one read, the URLs of each list's candidates
        // only): the four lists as each period's page totals merged by URL give, ties at the cut by URL.
        for (const device of [null, "MOBILE"] as const) {
          const [q1, q2] = device
            ? await Promise.all([
                findPageTotals(db, { siteId: site, searchType, device, ...period1 }),
                findPageTotals(db, { siteId: site, searchType, device, ...period2 }),
              ])
            : [p1, p2];
          type K = { page: string; c1: number; i1: number; w1: number; c2: number; i2: number; w2: number };
          const merged = new Map<string, K>();
          const row = (page: string) => merged.get(page) ?? merged.set(page, { page, c1: 0, i1: 0, w1: 0, c2: 0, i2: 0, w2: 0 }).get(page)!;
          for (const p of q1) Object.assign(row(p.page), { c1: p.clicks, i1: p.impressions, w1: p.sumPosition / 100 });
          for (const p of q2) Object.assign(row(p.page), { c2: p.clicks, i2: p.impressions, w2: p.sumPosition / 100 });
          const d = (r: K) => r.c2 - r.c1;
          const m = (r: K) => r.w2 / r.i2 - r.w1 / r.i1;
          const both = (r: K) => r.i1 > 0 && r.i2 > 0;
          for (const limit of [1, 2, 5, 50]) {
            const top = (keep: (r: K) => boolean, cmp: (a: K, b: K) => number) =>
              [...merged.values()]
                .filter(keep)
                .sort((a, b) => cmp(a, b) || (a.page < b.page ? -1 : 1))
                .slice(0, limit)
                .map((r) => [r.page, d(r)]);
            const want = [
              top(
                (r) => d(r) > 0,
                (a, b) => d(b) - d(a),
              ),
              top(
                (r) => d(r) < 0,
                (a, b) => d(a) - d(b),
              ),
              top(
                (r) => both(r) && m(r) < 0,
                (a, b) => m(a) - m(b),
              ),
              top(
                (r) => both(r) && m(r) > 0,
                (a, b) => m(b) - m(a),
              ),
            ];
            const c = await comparePeriods(db, {
              siteId: site,
              searchType,
              device,
              by: "page",
              previous: period1,
              current: period2,
              limit,
            });
            const lists = [c.winners, c.losers, c.position_gains, c.position_losses].map((l) =>
              l.map((r) => [(r as unknown as { page: string }).page, r.clicks_change]),
            );
            expect({ searchType, device, limit, lists }).toEqual({ searchType, device, limit, lists: want });
          }
        }
      }
    }
    // The rollup itself: each week's sums of its days' rows (weeks of pages gone on a re-fetch stay, at 0).
    const q = `select week, type, page_id, clicks, impressions, sum_position from gsc_week_page_totals
      where site_id = ${site} and (clicks <> 0 or impressions <> 0 or sum_position <> 0) order by 1, 2, 3`;
    const got = (db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all()) as Record<string, unknown>[];
    const want = new Map<string, number[]>();
    for (const r of stored) {
      const k = `${Math.floor(r.day / 7)}|${r.type}|${ids.get(r.page)}`;
      const v = want.get(k) ?? [0, 0, 0];
      want.set(k, [v[0]! + r.clicks, v[1]! + r.impressions, v[2]! + r.sp]);
    }
    const wantRows = [...want.entries()]
      .filter(([, v]) => v.some((x) => x !== 0))
      .map(([k, v]) => [...k.split("|").map(Number), ...v])
      .sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!);
    expect(got.map((r) => Object.values(r).map(Number))).toEqual(wantRows);
  });

  // countPages reads the window's whole weeks and, for the edge weeks' pages not among them, seeks their edge days:
  // pages with clicks or impressions only on an edge day inside the window count, only outside it (same week) or
  // with zeros do not.
  test("page count from the weekly rollup: a page of an edge week counts only with clicks or impressions on an edge day in the window", async () => {
    const site = await addSite(db, "sc-domain:edges.example", "e");
    const pages = ["a", "b", "c", "d", "e", "f", "g", "h"].map((p) => `https://edges.example/${p}`);
    const ids = await db.tx((tx) => upsertPageIds(tx, site, pages));
    const k = Math.floor(dayNumber(END) / 7) - 4;
    const lo = 7 * k + 3;
    const hi = 7 * (k + 3) + 1;
    // (page, day, clicks, impressions): a in a whole week; b and h on head / tail days inside; c, e only outside the
    // window in its edge weeks; f with zeros inside and numbers outside (head week); g with zeros in a whole week.
    const rows: [string, number, number, number][] = [
      ["a", 7 * (k + 1) + 2, 1, 3],
      ["b", lo + 1, 0, 2],
      ["c", 7 * k + 1, 4, 9],
      ["d", hi, 1, 1],
      ["e", hi + 2, 2, 5],
      ["f", lo, 0, 0],
      ["f", 7 * k, 1, 5],
      ["g", 7 * (k + 2), 0, 0],
      ["h", 7 * k + 2, 3, 3],
      ["h", hi, 0, 1],
    ];
    for (let day = 7 * k; day <= 7 * (k + 3) + 6; day++) {
      const page = rows
        .filter((r) => r[1] === day)
        .map(([p, , clicks, impressions]) => ({
          page_id: ids.get(`https://edges.example/${p}`)!,
          country: "",
          device: 1,
          clicks,
          impressions,
          sum_position: impressions * 100,
        }));
      await db.tx((tx) =>
        replaceDayGrains(tx, {
          siteId: site,
          day,
          type: 1,
          property: [{ country: "", device: 0, clicks: 1, impressions: 1, sum_position: 100 }],
          page,
          appearance: [],
          completeness: {
            property_rows: 1,
            page_rows: page.length,
            detail_rows: 0,
            appearance_rows: 0,
            page_truncated: false,
            detail_truncated: false,
            anonymized_share: null,
            data_state: "final",
          },
        }),
      );
    }
    const f = { siteId: site, start: dayDate(lo), end: dayDate(hi), searchType: "web" as const };
    const weeks = splitWeeks(lo, hi)!;
    expect([weeks.head, weeks.tail]).toEqual([
      [lo, 7 * (k + 1) - 1],
      [7 * (k + 3), hi],
    ]);
    // Every day has grains: the weekly read answers (it leaves windows with days to derive to the day rows).
    expect((await findUngrainedDays(db, site, [1], f.start, f.end)).count).toBe(0);
    expect(await countPages(db, f, { grain: "day" })).toBe(4);
    expect((await findPageTotals(db, f)).map((p) => p.page).sort()).toEqual(["a", "b", "d", "h"].map((p) => `https://edges.example/${p}`));
    // Each engine counts from the weekly rollup by the weeks' rows or by a seek per page of the site: each way, the same.
    for (const mode of ["auto", "always", "never"] as const) {
      setPageCountBySeeks(mode);
      expect({ mode, n: await countPages(db, f) }).toEqual({ mode, n: 4 });
      // Windows on week boundaries and one edge at a time.
      for (const [a, b, want] of [
        [7 * (k + 1), 7 * (k + 3) - 1, 1],
        [lo, 7 * (k + 3) - 1, 2],
        [7 * (k + 1), hi, 3],
        [7 * k, 7 * (k + 3) + 6, 7],
      ] as const) {
        expect({ mode, a, b, n: await countPages(db, { ...f, start: dayDate(a), end: dayDate(b) }) }).toEqual({ mode, a, b, n: want });
        expect(await countPages(db, { ...f, start: dayDate(a), end: dayDate(b) }, { grain: "day" })).toBe(want);
      }
    }
    setPageCountBySeeks("auto");
  });

  // Query sums per query id, the text joined afterwards: the same queries, sums and order as the rows summed by text.
  test("top queries and the keyword search equal the detail summed by query text", async () => {
    const q = `select q.query as query, d.device as device, d.clicks as clicks, d.impressions as impressions, d.sum_position as sp
      from gsc_query_detail d join gsc_queries q on q.id = d.query_id where d.site_id = ${siteId} and d.type = 1`;
    const raw = db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all();
    const rows = (raw as { query: string; device: number; clicks: number; impressions: number; sp: number }[]).map((r) => ({
      query: r.query,
      device: Number(r.device),
      clicks: Number(r.clicks),
      impressions: Number(r.impressions),
      sp: Number(r.sp),
    }));
    const sumBy = (keep: (r: (typeof rows)[number]) => boolean) => {
      const m = new Map<string, { query: string; clicks: number; impressions: number; sp: number }>();
      for (const r of rows.filter(keep)) {
        const s = m.get(r.query) ?? { query: r.query, clicks: 0, impressions: 0, sp: 0 };
        s.clicks += r.clicks;
        s.impressions += r.impressions;
        s.sp += r.sp;
        m.set(r.query, s);
      }
      return [...m.values()];
    };
    const byText = (a: { query: string }, b: { query: string }) => (a.query < b.query ? -1 : a.query > b.query ? 1 : 0);
    const f = { siteId, start: addDays(END, -9), end: END, searchType: "web" };
    for (const [order, device, contains] of [
      ["clicks", null, null],
      ["impressions", null, null],
      ["clicks", "MOBILE", null],
      ["clicks", null, "Q1"],
    ] as const) {
      const want = sumBy(
        (r) => (!device || r.device === DEVICES.indexOf(device) + 1) && (!contains || r.query.includes(contains.toLowerCase())),
      )
        .sort((a, b) =>
          order === "impressions"
            ? b.impressions - a.impressions || b.clicks - a.clicks || byText(a, b)
            : b.clicks - a.clicks || b.impressions - a.impressions || byText(a, b),
        )
        .slice(0, 15)
        .map((s) => ({ query: s.query, ...rounded(metricsOf(s.clicks, s.impressions, s.sp / 100)) }));
      expect(want.length).toBeGreaterThan(3);
      expect(await findTop(db, { ...f, by: "query", limit: 15, order, device, contains })).toEqual(want);
    }
    const want = sumBy((r) => r.query.startsWith("q1"))
      .sort((a, b) => b.impressions - a.impressions || byText(a, b))
      .map((s) => ({ query: s.query, total_clicks: s.clicks, total_impressions: s.impressions, avg_position: s.sp / s.impressions / 100 }));
    expect(want.length).toBeGreaterThan(3);
    // compare_periods by query: both periods' sums per query, ordered by the clicks change, ties by text.
    const p1 = { start: addDays(END, -9), end: addDays(END, -5) };
    const p2 = { start: addDays(END, -4), end: END };
    const dayOf = async () => {
      const q2 = `select q.query as query, d.day as day, d.clicks as clicks, d.impressions as impressions, d.sum_position as sp
        from gsc_query_detail d join gsc_queries q on q.id = d.query_id where d.site_id = ${siteId} and d.type = 1`;
      const r = db.engine === "pg" ? (await db.pg!.pool.query(q2)).rows : db.raw.reader.query(q2).all();
      return (r as { query: string; day: number; clicks: number; impressions: number; sp: number }[]).map((x) => ({
        query: x.query,
        day: Number(x.day),
        clicks: Number(x.clicks),
        impressions: Number(x.impressions),
        sp: Number(x.sp),
      }));
    };
    const perDay = await dayOf();
    const m = new Map<string, { c1: number; c2: number; i1: number; i2: number; s1: number; s2: number }>();
    for (const r of perDay) {
      const e = m.get(r.query) ?? { c1: 0, c2: 0, i1: 0, i2: 0, s1: 0, s2: 0 };
      if (r.day <= dayNumber(p1.end)) Object.assign(e, { c1: e.c1 + r.clicks, i1: e.i1 + r.impressions, s1: e.s1 + r.sp });
      else Object.assign(e, { c2: e.c2 + r.clicks, i2: e.i2 + r.impressions, s2: e.s2 + r.sp });
      m.set(r.query, e);
    }
    const pos = (sp: number, i: number) => (i > 0 ? Number((sp / i / 100).toFixed(9)) : null);
    for (const order of ["losers_first", "gainers_first"] as const) {
      const sign = order === "losers_first" ? 1 : -1;
      const wantCmp = [...m.entries()]
        .map(([key, e]) => ({
          key,
          period1_clicks: e.c1,
          period2_clicks: e.c2,
          clicks_change: e.c2 - e.c1,
          period1_impressions: e.i1,
          period2_impressions: e.i2,
          period1_position: pos(e.s1, e.i1),
          period2_position: pos(e.s2, e.i2),
        }))
        .sort((a, b) => sign * (a.clicks_change - b.clicks_change) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .slice(0, 12);
      const gotCmp = await comparePeriodsBy(db, { siteId, searchType: "web", period1: p1, period2: p2, by: "query", order, limit: 12 });
      expect(
        gotCmp.map((r) => ({
          key: r.key,
          period1_clicks: r.period1_clicks,
          period2_clicks: r.period2_clicks,
          clicks_change: r.clicks_change,
          period1_impressions: r.period1_impressions,
          period2_impressions: r.period2_impressions,
          period1_position: r.period1_position === null ? null : Number(r.period1_position.toFixed(9)),
          period2_position: r.period2_position === null ? null : Number(r.period2_position.toFixed(9)),
        })),
      ).toEqual(wantCmp);
    }
    const got = await searchKeywords(db, { siteId, searchType: "web", since: addDays(END, -9), pattern: "Q1%", limit: 100 });
    expect(got.map((r) => ({ ...r, avg_position: Number(r.avg_position.toFixed(9)) }))).toEqual(
      want.map((r) => ({ ...r, avg_position: Number(r.avg_position.toFixed(9)) })),
    );
  });

  // Reads of every query over a window (insights overview/top/compare/brand, MCP compare_periods): the rollup's
  // window (SQLite: a key range per type of its (site_id, type, day, query_id) key) gives the detail's answers, for
  // every window shape.
  test("cannibalization equals the detail summed per query and page: the largest queries first, more when too few", async () => {
    const q = `select q.query as query, p.page as page, d.day as day, d.type as type, d.device as device, d.clicks as clicks,
      d.impressions as impressions from gsc_query_detail d join gsc_queries q on q.id = d.query_id join gsc_pages p on p.id = d.page_id
      where d.site_id = ${siteId}`;
    const raw = db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all();
    const rows = (raw as Record<string, string | number>[]).map((r) => ({
      query: String(r.query),
      page: String(r.page),
      day: Number(r.day),
      type: Number(r.type),
      device: Number(r.device),
      clicks: Number(r.clicks),
      impressions: Number(r.impressions),
    }));
    const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    const want = (o: {
      start: string;
      end: string;
      type: number | null;
      device: number | null;
      minShare: number;
      minImp: number;
      limit: number;
    }) => {
      const pairs = new Map<string, Map<string, { clicks: number; impressions: number }>>();
      for (const r of rows) {
        if (r.day < dayNumber(o.start) || r.day > dayNumber(o.end) || (o.type && r.type !== o.type) || (o.device && r.device !== o.device))
          continue;
        const pages = pairs.get(r.query) ?? new Map();
        pairs.set(r.query, pages);
        const e = pages.get(r.page) ?? { clicks: 0, impressions: 0 };
        e.clicks += r.clicks;
        e.impressions += r.impressions;
        pages.set(r.page, e);
      }
      return [...pairs]
        .map(([query, pages]) => ({ query, total: [...pages.values()].reduce((a, e) => a + e.impressions, 0), pages: [...pages] }))
        .filter((x) => x.total >= o.minImp && x.pages.filter(([, e]) => e.impressions >= x.total * o.minShare).length >= 2)
        .sort((a, b) => b.total - a.total || byText(a.query, b.query))
        .slice(0, o.limit)
        .map((x) => [
          x.query,
          x.total,
          x.pages
            .sort(([p, a], [r, b]) => b.impressions - a.impressions || byText(p, r))
            .map(([page, e]) => [page, e.clicks, e.impressions]),
        ]);
    };
    let seen = 0;
    for (const [from, to] of [
      [9, 0],
      [3, 1],
    ])
      for (const searchType of ["web", "all"])
        for (const device of [null, "MOBILE"])
          for (const [minShare, minImp, limit] of [
            [0.1, 50, 1],
            [0.25, 100, 3],
            [0.1, 20, 50],
          ]) {
            const o = { start: addDays(END, -from!), end: addDays(END, -to!), minShare: minShare!, minImp: minImp!, limit: limit! };
            const got = await findCannibalization(db, {
              siteId,
              searchType,
              device,
              start: o.start,
              end: o.end,
              minShare: o.minShare,
              minImpressions: o.minImp,
              limit: o.limit,
            });
            const expected = want({ ...o, type: searchType === "all" ? null : 1, device: device ? 2 : null });
            expect(got.map((c) => [c.query, c.impressions, c.pages.map((p) => [p.page, p.clicks, p.impressions])])).toEqual(expected);
            seen += expected.length;
          }
    expect(seen).toBeGreaterThan(20);
  });

  test("reads of every query over a window (the rollup's day ranges) equal the detail summed", async () => {
    const q = `select q.query as query, d.day as day, d.clicks as clicks, d.impressions as impressions, d.sum_position as sp
      from gsc_query_detail d join gsc_queries q on q.id = d.query_id where d.site_id = ${siteId} and d.type = 1`;
    const raw = db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all();
    const rows = (raw as Record<string, string | number>[]).map((r) => ({
      query: String(r.query),
      day: Number(r.day),
      clicks: Number(r.clicks),
      impressions: Number(r.impressions),
      sp: Number(r.sp),
    }));
    type S = { query: string; clicks: number; impressions: number; sp: number };
    const sums = (p: { start: string; end: string }) => {
      const m = new Map<string, S>();
      for (const r of rows) {
        if (r.day < dayNumber(p.start) || r.day > dayNumber(p.end)) continue;
        const e = m.get(r.query) ?? { query: r.query, clicks: 0, impressions: 0, sp: 0 };
        e.clicks += r.clicks;
        e.impressions += r.impressions;
        e.sp += r.sp;
        m.set(r.query, e);
      }
      return m;
    };
    const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    const win = (from: number, to: number) => ({ start: addDays(END, -from), end: addDays(END, -to) });
    // [previous, current]: whole history, recent days, a short middle, periods of unequal length.
    const shapes: [{ start: string; end: string }, { start: string; end: string }][] = [
      [win(9, 5), win(4, 0)],
      [win(3, 2), win(1, 0)],
      [win(6, 6), win(5, 4)],
      [win(8, 3), win(2, 2)],
    ];
    for (const [p1, p2] of shapes) {
      const span = { start: p1.start, end: p2.end };
      const f = { siteId, ...span, searchType: "web" };
      const all = [...sums(span).values()];
      // Top queries by clicks.
      const top = [...all]
        .sort((a, b) => b.clicks - a.clicks || b.impressions - a.impressions || byText(a.query, b.query))
        .slice(0, 7)
        .map((s) => ({ query: s.query, ...rounded(metricsOf(s.clicks, s.impressions, s.sp / 100)) }));
      expect(await findTop(db, { ...f, by: "query", limit: 7 })).toEqual(top);
      // The overview's named queries.
      expect((await findOverview(db, f)).queries).toBe(all.length);
      // Brand split (queries containing "q1", any case).
      const part = (brand: boolean) => {
        const ss = all.filter((s) => s.query.includes("q1") === brand);
        const t = ss.reduce((a, s) => ({ c: a.c + s.clicks, i: a.i + s.impressions, w: a.w + s.sp }), { c: 0, i: 0, w: 0 });
        return { ...rounded(metricsOf(t.c, t.i, t.w / 100)), queries: ss.length };
      };
      const brand = await findBrandSplit(db, { ...f, terms: ["Q1"] });
      expect({ brand: brand.brand, non_brand: brand.non_brand }).toEqual({ brand: part(true), non_brand: part(false) });
      // Both periods per query: insights' four lists and MCP compare_periods.
      const a = sums(p1);
      const b = sums(p2);
      const zero = { clicks: 0, impressions: 0, sp: 0 };
      const keys = [...new Set([...a.keys(), ...b.keys()])].map((k) => ({
        k,
        x: a.get(k) ?? { ...zero, query: k },
        y: b.get(k) ?? { ...zero, query: k },
      }));
      const d = (e: (typeof keys)[number]) => e.y.clicks - e.x.clicks;
      const m = (e: (typeof keys)[number]) => (e.y.sp * 1.0) / e.y.impressions - (e.x.sp * 1.0) / e.x.impressions;
      const both = (e: (typeof keys)[number]) => e.x.impressions > 0 && e.y.impressions > 0;
      const list = (keep: (e: (typeof keys)[number]) => boolean, cmp: (u: (typeof keys)[number], v: (typeof keys)[number]) => number) =>
        keys
          .filter(keep)
          .sort((u, v) => cmp(u, v) || byText(u.k, v.k))
          .slice(0, 5)
          .map((e) => [e.k, d(e)]);
      const cmp = await comparePeriods(db, { siteId, searchType: "web", by: "query", previous: p1, current: p2, limit: 5 });
      const pairs = (l: { query?: string; clicks_change: number }[]) => l.map((c) => [c.query, c.clicks_change]);
      expect(pairs(cmp.winners)).toEqual(
        list(
          (e) => d(e) > 0,
          (u, v) => d(v) - d(u),
        ),
      );
      expect(pairs(cmp.losers)).toEqual(
        list(
          (e) => d(e) < 0,
          (u, v) => d(u) - d(v),
        ),
      );
      expect(pairs(cmp.position_gains)).toEqual(
        list(
          (e) => both(e) && m(e) < 0,
          (u, v) => m(u) - m(v),
        ),
      );
      expect(pairs(cmp.position_losses)).toEqual(
        list(
          (e) => both(e) && m(e) > 0,
          (u, v) => m(v) - m(u),
        ),
      );
      expect(cmp.winners.length + cmp.losers.length).toBeGreaterThan(0);
      const mcp = await comparePeriodsBy(db, {
        siteId,
        searchType: "web",
        period1: p1,
        period2: p2,
        by: "query",
        order: "gainers_first",
        limit: 6,
      });
      expect(mcp.map((r) => [r.key, r.clicks_change])).toEqual(
        keys
          .sort((u, v) => d(v) - d(u) || byText(u.k, v.k))
          .slice(0, 6)
          .map((e) => [e.k, d(e)]),
      );
      const totals = await comparePeriodTotals(db, { siteId, searchType: "web", period1: p1, period2: p2 });
      expect([totals.period1_queries, totals.period2_queries]).toEqual([a.size, b.size]);
      // Every type, from a day inside the first period on (`since`): the distinct queries of the detail.
      const distinct = async (from: string, to: string) => {
        const q = `select count(distinct query_id) as n from gsc_query_detail
          where site_id = ${siteId} and day >= ${dayNumber(from)} and day <= ${dayNumber(to)}`;
        const rows = db.engine === "pg" ? (await db.pg!.pool.query(q)).rows : db.raw.reader.query(q).all();
        return Number((rows[0] as { n: number | string }).n);
      };
      const since = addDays(p1.start, 1);
      const every = await comparePeriodTotals(db, { siteId, searchType: "all", since, period1: p1, period2: p2 });
      expect([every.period1_queries, every.period2_queries]).toEqual([await distinct(since, p1.end), await distinct(p2.start, p2.end)]);
    }
    // One day of the ten: the same sums.
    const one = win(4, 4);
    const day = [...sums(one).values()];
    const f1 = { siteId, ...one, searchType: "web" };
    expect((await findOverview(db, f1)).queries).toBe(day.length);
    expect(await findTop(db, { ...f1, by: "query", limit: 7 })).toEqual(
      [...day]
        .sort((a, b) => b.clicks - a.clicks || b.impressions - a.impressions || byText(a.query, b.query))
        .slice(0, 7)
        .map((s) => ({ query: s.query, ...rounded(metricsOf(s.clicks, s.impressions, s.sp / 100)) })),
    );
    const t1 = await comparePeriodTotals(db, { siteId, searchType: "web", period1: one, period2: one });
    expect([t1.period1_queries, t1.period2_queries]).toEqual([day.length, day.length]);
  });
});

// The backfill: a database filled before the rollup tables existed gets, from the migration, exactly the
// rows the sync's refresh writes day by day.
const TAG = { sqlite: "0022_day_query_counts", pg: "0017_day_query_counts" };
const ROLLUP_TABLES = ["gsc_day_query_counts"];
const WEEK_TABLE = "gsc_week_page_totals";

/** Detail and rollup rows of a few days, written directly (as an older version stored them). */
function oldRowsSql(): string[] {
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
    for (const day of [20400, 20401, 20402])
      for (const type of [1, 2, 3])
        for (const page of pages)
          for (const q of qs)
            for (const device of [1, 2, 3]) {
              // Not every key on every day: a sparse, uneven pattern.
              if ((q * 7 + day + type * 3 + page + device * 5) % 4 === 0) continue;
              const v = q + device + type;
              detail.push(`(${site}, ${day}, ${type}, ${page}, ${q}, ${device}, ${v}, ${v * 10}, ${v * 1000})`);
            }
  out.push(
    `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position) values ${detail.join(", ")}`,
  );
  out.push(`insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
    select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position) from gsc_query_detail group by site_id, day, type, query_id`);
  // Page totals by country and device on those days and a week later (two weeks: 20398-20404, 20405-20411).
  for (const shift of [0, 7])
    out.push(`insert into gsc_page_totals (site_id, day, type, page_id, country, device, clicks, impressions, sum_position)
      select site_id, day + ${shift}, type, page_id, case when query_id % 2 = 0 then 'usa' else '' end, device, sum(clicks) + ${shift},
             sum(impressions), sum(sum_position)
        from gsc_query_detail group by site_id, day, type, page_id, case when query_id % 2 = 0 then 'usa' else '' end, device`);
  return out;
}

const dumpSql = (table: string) => `select * from ${table} order by 1, 2, 3, 4`;

describe("the migration backfills the rollups of data already stored", () => {
  const dir = tempDir("sitesync-rollups-migration-");
  afterAll(() => dir.cleanup());

  test("SQLite: backfilled rows = the day-by-day refresh's rows", async () => {
    const path = join(dir.dir, "old.db");
    migrate(path, defaultPragmas, migrationsBefore(migrationsFolder, TAG.sqlite, dir.dir));
    const old = new Database(path);
    for (const s of oldRowsSql()) old.run(s);
    old.close();
    migrate(path);
    const db = new Database(path);
    try {
      const backfilled = ROLLUP_TABLES.map((t) => db.query(dumpSql(t)).all());
      expect(backfilled[0]!.length).toBe(18); // 2 sites × 3 days × 3 types
      // The refresh of every stored day must write the same rows.
      const { wrapOrm } = await import("../src/db/sqlite/open.ts");
      const orm = wrapOrm(db);
      for (const t of ROLLUP_TABLES) db.run(`delete from ${t}`);
      for (const { site_id, day, type } of db
        .query<{ site_id: number; day: number; type: number }, []>("select distinct site_id, day, type from gsc_query_detail")
        .all())
        await refreshDayRollups(orm, site_id, day, type);
      expect(ROLLUP_TABLES.map((t) => db.query(dumpSql(t)).all())).toEqual(backfilled);
      // The weekly page totals: the backfill's rows = each stored day added to its week.
      const weeks = db.query(dumpSql(WEEK_TABLE)).all();
      expect(weeks.length).toBe(18); // 3 pages × 3 types × 2 weeks
      db.run(`delete from ${WEEK_TABLE}`);
      for (const { site_id, day, type } of db
        .query<{ site_id: number; day: number; type: number }, []>("select distinct site_id, day, type from gsc_page_totals")
        .all())
        await moveDayPageWeek(orm, site_id, day, type, 1);
      expect(db.query(dumpSql(WEEK_TABLE)).all()).toEqual(weeks);
    } finally {
      db.close();
    }
  });
});

describe.skipIf(postgresSkipReason !== null || pgRunsToo)("PostgreSQL: the migration backfills the rollups", () => {
  const server = usePostgres();
  const dir = tempDir("sitesync-rollups-migration-pg-");
  afterAll(() => dir.cleanup());

  test("backfilled rows = the day-by-day refresh's rows", async () => {
    const url = await server.newDatabase();
    const c = await pgFixtureBefore(url, TAG.pg, oldRowsSql(), dir.dir);
    try {
      await migratePg(url);
      const dump = async () => Promise.all(ROLLUP_TABLES.map(async (t) => (await c.query(dumpSql(t))).rows));
      const backfilled = await dump();
      expect(backfilled[0]!.length).toBe(18); // 2 sites × 3 days × 3 types
      const { drizzle } = await import("drizzle-orm/node-postgres");
      const orm = drizzle(c);
      for (const t of ROLLUP_TABLES) await c.query(`delete from ${t}`);
      for (const { site_id, day, type } of (await c.query("select distinct site_id, day, type from gsc_query_detail")).rows)
        await refreshDayRollups(orm as never, site_id, day, type);
      expect(await dump()).toEqual(backfilled);
      const weeks = (await c.query(dumpSql(WEEK_TABLE))).rows;
      expect(weeks.length).toBe(18); // 3 pages × 3 types × 2 weeks
      await c.query(`delete from ${WEEK_TABLE}`);
      for (const { site_id, day, type } of (await c.query("select distinct site_id, day, type from gsc_page_totals")).rows)
        await moveDayPageWeek(orm as never, site_id, day, type, 1);
      expect((await c.query(dumpSql(WEEK_TABLE))).rows).toEqual(weeks);
    } finally {
      await c.end();
    }
  });
});
