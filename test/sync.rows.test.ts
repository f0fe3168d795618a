import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { count, eq, sql } from "drizzle-orm";
import { upsertRows } from "../src/sync/data.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { tempDb } from "./helpers/db.ts";
import { insertSites } from "./helpers/sync.ts";

// The detail write of the sync (upsertRows) in big batches, on either engine: a batch's new pages and queries go
// into the dictionaries in one statement (SQLite) and the rows in column arrays of 20,000 (PostgreSQL UNNEST); a key
// given twice in a batch keeps its last row; a batch written again updates its rows in place.

let t: ReturnType<typeof tempDb>;
let site = 0;
beforeAll(async () => {
  t = tempDb();
  site = (await insertSites(t.db, 1, "rows.example"))[0]!;
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
