// The grain tables and their formulas (docs/design/grains.md) on hand-computed fixtures, on the suite's engine.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../src/db/index.ts";
import { type DayGrains, type PageTotal, replaceDayGrains, upsertPageIds } from "../src/sync/grain-writes.ts";
import { anonymizedShare, ctrOf, dayDate, dayNumber, deviceCode, positionOf, sumPosition, typeCode } from "../src/sync/grains.ts";
import { tempDb } from "./helpers/db.ts";
import { addSite } from "./helpers/rows.ts";

let t: ReturnType<typeof tempDb>;
let db: Db;
let siteId: number;

beforeAll(async () => {
  t = tempDb();
  db = t.db;
  siteId = await addSite(db, "sc-domain:grains.example", "g");
});
afterAll(async () => {
  await t.cleanup();
});

describe("units", () => {
  test("day numbers, codes and scaled positions", () => {
    expect(dayNumber("1970-01-02")).toBe(1);
    expect(dayNumber("2026-12-05")).toBe(20_792);
    expect(dayDate(20_792)).toBe("2026-12-05");
    expect(typeCode("web")).toBe(1);
    expect(typeCode("googleNews")).toBe(6);
    expect(deviceCode("MOBILE")).toBe(2);
    expect(deviceCode(undefined)).toBe(0);
    // position 2.5 over 4 impressions = 10 position-impressions, × 100
    expect(sumPosition(2.5, 4)).toBe(1000);
  });
});

describe("formulas over stored rows (hand-computed)", () => {
  test("CTR = Σclicks/Σimpressions and position impression-weighted, not row means", async () => {
    const day = dayNumber("2026-11-01");
    const web = typeCode("web");
    // Two detail rows: (clicks 1, impr 10, pos 1.0) and (clicks 3, impr 30, pos 5.0).
    // Row means would say ctr (0.1+0.1)/2 = 0.1, position 3.0; the right answer: ctr 4/40 = 0.1,
    // position (1×10 + 5×30)/40 = 160/40 = 4.0.
    const [p1, q1, q2] = await db.tx(async (tx) => {
      const [p] = await tx.insert(db.t.gscPages).values({ site_id: siteId, page: "https://grains.example/a" }).returning();
      const [a] = await tx.insert(db.t.gscQueries).values({ site_id: siteId, query: "alpha" }).returning();
      const [b] = await tx.insert(db.t.gscQueries).values({ site_id: siteId, query: "beta" }).returning();
      await tx.insert(db.t.gscQueryDetail).values([
        {
          site_id: siteId,
          day,
          type: web,
          page_id: p!.id,
          query_id: a!.id,
          device: 1,
          clicks: 1,
          impressions: 10,
          sum_position: sumPosition(1, 10),
        },
        {
          site_id: siteId,
          day,
          type: web,
          page_id: p!.id,
          query_id: b!.id,
          device: 2,
          clicks: 3,
          impressions: 30,
          sum_position: sumPosition(5, 30),
        },
      ]);
      // The property's true totals include anonymized queries: 10 clicks, 100 impressions, position 3.2.
      await tx.insert(db.t.gscPropertyTotals).values([
        { site_id: siteId, day, type: web, country: "usa", device: 1, clicks: 6, impressions: 60, sum_position: sumPosition(3, 60) },
        { site_id: siteId, day, type: web, country: "fra", device: 2, clicks: 4, impressions: 40, sum_position: sumPosition(3.5, 40) },
      ]);
      return [p!, a!, b!];
    });
    expect(q1.id).not.toBe(q2.id);
    const d = db.t.gscQueryDetail;
    const [detail] = await db.q
      .select({
        clicks: sql<number>`sum(${d.clicks})`.mapWith(Number),
        impressions: sql<number>`sum(${d.impressions})`.mapWith(Number),
        sp: sql<number>`sum(${d.sum_position})`.mapWith(Number),
      })
      .from(d)
      .where(and(eq(d.site_id, siteId), eq(d.day, day), eq(d.page_id, p1.id)));
    expect(detail).toEqual({ clicks: 4, impressions: 40, sp: 16_000 });
    expect(ctrOf(detail!.clicks, detail!.impressions)).toBe(0.1);
    expect(positionOf(detail!.sp, detail!.impressions)).toBe(4);

    const p = db.t.gscPropertyTotals;
    const [prop] = await db.q
      .select({
        clicks: sql<number>`sum(${p.clicks})`.mapWith(Number),
        impressions: sql<number>`sum(${p.impressions})`.mapWith(Number),
        sp: sql<number>`sum(${p.sum_position})`.mapWith(Number),
      })
      .from(p)
      .where(and(eq(p.site_id, siteId), eq(p.day, day), eq(p.type, web)));
    // (3×60 + 3.5×40)/100 = (180 + 140)/100 = 3.2
    expect(prop).toEqual({ clicks: 10, impressions: 100, sp: 32_000 });
    expect(positionOf(prop!.sp, prop!.impressions)).toBeCloseTo(3.2, 12);
    expect(ctrOf(prop!.clicks, prop!.impressions)).toBe(0.1);
    // 4 of 10 clicks come from named queries: 60 % anonymized.
    expect(anonymizedShare(detail!.clicks, prop!.clicks)).toBeCloseTo(0.6, 12);
    expect(anonymizedShare(0, 0)).toBeNull();
  });

  test("the clustered keys refuse a duplicate grain row", async () => {
    const day = dayNumber("2026-11-02");
    const row = { site_id: siteId, day, type: 1, country: "usa", device: 1, clicks: 1, impressions: 1, sum_position: 100 };
    await db.tx(async (tx) => {
      await tx.insert(db.t.gscPropertyTotals).values(row);
    });
    await expect(
      db.tx(async (tx) => {
        await tx.insert(db.t.gscPropertyTotals).values(row);
      }),
    ).rejects.toThrow();
  });
});

describe("replaceDayGrains: a day's page totals replaced in SQL", () => {
  const completeness = {
    property_rows: 1,
    page_rows: 0,
    detail_rows: 0,
    appearance_rows: 0,
    page_truncated: false,
    detail_truncated: false,
    anonymized_share: null,
    data_state: "final" as const,
  };
  const grains = (day: number, page: PageTotal[]): DayGrains => ({
    siteId,
    day,
    type: 1,
    property: [{ country: "usa", device: 1, clicks: 1, impressions: 1, sum_position: 100 }],
    page,
    appearance: [],
    completeness: { ...completeness, page_rows: page.length },
  });
  const stored = async (day: number) => {
    const p = db.t.gscPageTotals;
    const rows = await db.q
      .select({
        page_id: p.page_id,
        country: p.country,
        device: p.device,
        clicks: p.clicks,
        impressions: p.impressions,
        sum_position: p.sum_position,
      })
      .from(p)
      .where(and(eq(p.site_id, siteId), eq(p.day, day), eq(p.type, 1)));
    return rows.sort((a, b) => a.page_id - b.page_id || a.country.localeCompare(b.country) || a.device - b.device);
  };

  test("rows gone from the new fetch deleted (a migration's country '' row too), changed ones updated, new ones added, other days alone", async () => {
    const day = dayNumber("2026-11-03");
    const other = dayNumber("2026-11-04");
    const ids = await db.tx((tx) => upsertPageIds(tx, siteId, ["https://g.example/a", "https://g.example/b", "https://g.example/c"]));
    const [a, b, c] = ["a", "b", "c"].map((x) => ids.get(`https://g.example/${x}`)!);
    const m = (clicks: number) => ({ clicks, impressions: clicks * 10, sum_position: clicks * 150 });
    // The old day: a derived row (country '') as the in-place migration left it, a row that stays equal, one that changes.
    await db.tx(async (tx) => {
      await tx.insert(db.t.gscPageTotals).values({ site_id: siteId, day, type: 1, page_id: a!, country: "", device: 1, ...m(9) });
    });
    await db.tx((tx) => replaceDayGrains(tx, grains(other, [{ page_id: a!, country: "usa", device: 1, ...m(7) }])));
    await db.tx((tx) =>
      replaceDayGrains(
        tx,
        grains(day, [
          { page_id: a!, country: "usa", device: 1, ...m(1) },
          { page_id: a!, country: "usa", device: 2, ...m(2) },
          { page_id: b!, country: "fra", device: 1, ...m(3) },
        ]),
      ),
    );
    expect(await stored(day)).toEqual([
      { page_id: a!, country: "usa", device: 1, ...m(1) },
      { page_id: a!, country: "usa", device: 2, ...m(2) },
      { page_id: b!, country: "fra", device: 1, ...m(3) },
    ]);
    // Fetched again: a/usa/1 equal, a/usa/2 gone, b/fra/1 changed, c new; a row given twice is summed.
    await db.tx((tx) =>
      replaceDayGrains(
        tx,
        grains(day, [
          { page_id: a!, country: "usa", device: 1, ...m(1) },
          { page_id: b!, country: "fra", device: 1, ...m(4) },
          { page_id: c!, country: "deu", device: 3, ...m(5) },
          { page_id: c!, country: "deu", device: 3, ...m(1) },
        ]),
      ),
    );
    expect(await stored(day)).toEqual([
      { page_id: a!, country: "usa", device: 1, ...m(1) },
      { page_id: b!, country: "fra", device: 1, ...m(4) },
      { page_id: c!, country: "deu", device: 3, ...m(6) },
    ]);
    // The other day is untouched; an empty fetch empties the day.
    expect(await stored(other)).toEqual([{ page_id: a!, country: "usa", device: 1, ...m(7) }]);
    await db.tx((tx) => replaceDayGrains(tx, grains(day, [])));
    expect(await stored(day)).toEqual([]);
    expect(await stored(other)).toHaveLength(1);
  });

  test("a country with a quote or a backslash is stored as given (PostgreSQL's array literal escapes it)", async () => {
    const day = dayNumber("2026-11-05");
    const ids = await db.tx((tx) => upsertPageIds(tx, siteId, ["https://g.example/q"]));
    const q = ids.get("https://g.example/q")!;
    const odd = [`a"b`, "c\\d", "e,f", "{g}", ""];
    await db.tx((tx) =>
      replaceDayGrains(
        tx,
        grains(
          day,
          odd.map((country, i) => ({ page_id: q, country, device: 1, clicks: i, impressions: 10, sum_position: 100 })),
        ),
      ),
    );
    expect((await stored(day)).map((r) => r.country).sort()).toEqual([...odd].sort());
    await db.tx((tx) =>
      replaceDayGrains(tx, grains(day, [{ page_id: q, country: `a"b`, device: 1, clicks: 0, impressions: 10, sum_position: 100 }])),
    );
    expect((await stored(day)).map((r) => r.country)).toEqual([`a"b`]);
  });
});
