import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { findRankingData, type RankingOptions } from "../src/analytics/queries.ts";
import { addDays } from "../src/sync/dates.ts";
import { tempDb } from "./helpers/db.ts";
import { addSite, storeRows } from "./helpers/rows.ts";

// ranking-data's daily groups of the detail (no exact terms) with a limit are read newest days first, a span
// of days at a time, until the limit is reached (src/analytics/queries.ts, readRankingRows): the answer must be
// exactly the first `limit` rows of the whole window read at once (limit null), at every limit around the spans'
// edges (1, 2, 4, 8 ... days), for every request shape that takes that path.

// A hang guard, not a speed check: the loaded shared machine took 5 s for this file once.
setDefaultTimeout(60_000);

let t: ReturnType<typeof tempDb>;
let site = 0;
const H = "https://chunks.example";
const first = "2026-09-01";
const DAYS = 23;

beforeAll(async () => {
  t = tempDb();
  site = await addSite(t.db, "sc-domain:chunks.example");
  for (let i = 0; i < DAYS; i++) {
    // Day i has (i % 4) + 1 queries, so the groups per day vary and the limits below end inside spans and on their edges.
    const rows = [];
    for (let q = 0; q <= i % 4; q++) {
      for (const [p, device] of [
        ["a", "MOBILE"],
        ["b", "DESKTOP"],
      ] as const) {
        rows.push({
          page: `${H}/${p}${q}`,
          query: `shoe ${q}`,
          device,
          clicks: i + q,
          impressions: 10 + i * 3 + q,
          ctr: 0,
          position: 1 + q / 10,
        });
      }
    }
    await storeRows(t.db, site, addDays(first, i), "web", rows);
    if (i % 3 === 0) await storeRows(t.db, site, addDays(first, i), "image", rows.slice(0, 1));
  }
});
afterAll(() => t.cleanup());

describe("ranking-data daily groups with a limit, read newest days first in spans", () => {
  const base = { start: first, end: addDays(first, DAYS - 1), exact: null, partial: null, daily: true, searchType: null, device: null };
  const shapes: [string, Omit<RankingOptions, "siteId" | "limit">][] = [
    ["by query", { ...base, groupBy: "query" }],
    ["by page", { ...base, groupBy: "page" }],
    ["by query, partial", { ...base, groupBy: "query", partial: ["shoe 1", "shoe 3"] }],
    ["by page, one device and type", { ...base, groupBy: "page", device: "MOBILE", searchType: "web" }],
    ["by query, a window inside the data", { ...base, groupBy: "query", start: addDays(first, 2), end: addDays(first, 17) }],
  ];

  test("every limit gives the first rows of the whole window, in its order", async () => {
    for (const [name, o] of shapes) {
      const whole = await findRankingData(t.db, { ...o, siteId: site, limit: null });
      expect({ name, n: whole.length > 15 }).toEqual({ name, n: true });
      for (const limit of [0, 1, 2, 5, 9, 10, 11, 17, 18, 19, 25, 33, whole.length - 1, whole.length, whole.length + 5]) {
        const got = await findRankingData(t.db, { ...o, siteId: site, limit });
        expect({ name, limit, got }).toEqual({ name, limit, got: whole.slice(0, limit) });
      }
    }
  });
});
