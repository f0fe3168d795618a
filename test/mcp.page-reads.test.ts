import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { allRows } from "../src/analytics/totals.ts";
import { typeFilterCode } from "../src/analytics/detail.ts";
import { dayDate, dayNumber } from "../src/sync/grains.ts";
import { addDays } from "../src/sync/dates.ts";
import type { SearchType, SourceRow } from "../src/sync/source.ts";
import { findPageQueries, findPagesQueries, type Scope, trackPages } from "../src/mcp/queries.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";
import { addSite, storeRows } from "./helpers/rows.ts";

// The MCP tools that read given pages' detail (show_page_queries, track_pages, pages_queries) find the site's days
// with rows first and seek each day's rows of each page and type by the detail's key (src/mcp/queries.ts pageDetail),
// where they read every row of the site from `since` on with the page as a filter. Their answers are compared with
// that filter's plain statement on a site with gaps between days, several types, other sites' days in between, and
// pages with rows on only some days.

let t: ReturnType<typeof tempDb>;
let site = 0;
const H = "https://reads.example";
const first = "2026-09-01";

beforeAll(async () => {
  t = tempDb();
  const other = await addSite(t.db, "sc-domain:other.example");
  site = await addSite(t.db, "sc-domain:reads.example");
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const devices = ["DESKTOP", "MOBILE", "TABLET"];
  for (let k = 0; k < 40; k++) {
    const day = addDays(first, k);
    // Gaps: no rows on every fourth day but the other site's.
    if (k % 4 === 3) {
      await storeRows(t.db, other, day, "web", [
        { page: `${H}/a`, query: "q1", device: "MOBILE", clicks: 1, impressions: 3, ctr: 0, position: 1 },
      ]);
      continue;
    }
    for (const type of ["web", "image", "news"] as SearchType[]) {
      if (type !== "web" && k % 3 !== 0) continue;
      const rows: SourceRow[] = [];
      const seen = new Set<string>();
      for (let r = 0; r < 30; r++) {
        // Page a every day, b on even days, c rarely: its rows on a few days of a long history.
        const page = `${H}/${r % 5 === 0 ? "a" : k % 2 === 0 && r % 5 === 1 ? "b" : k % 9 === 0 && r % 5 === 2 ? "c" : `p${rnd(8)}`}`;
        const query = `q${rnd(12)}`;
        const device = devices[rnd(3)]!;
        if (seen.has(`${page}|${query}|${device}`)) continue;
        seen.add(`${page}|${query}|${device}`);
        const impressions = rnd(50);
        rows.push({ page, query, device, clicks: rnd(impressions + 1), impressions, ctr: 0, position: 1 + rnd(400) / 10 });
      }
      await storeRows(t.db, site, day, type, rows);
    }
  }
});
afterAll(() => t.cleanup());

/** The statement the three tools ran before: every detail row of the site from `since` on, the pages as a filter. */
function reference(s: Scope, pages: string[], keywords: string[], select: string, groupOrder: string, limit: number) {
  const type = typeFilterCode(s.searchType);
  return allRows<Record<string, unknown>>(
    t.db,
    `select ${select}, coalesce(sum(d.clicks), 0) as clicks, coalesce(sum(d.impressions), 0) as impressions,
       coalesce(cast(sum(d.sum_position) as double precision) / nullif(sum(d.impressions), 0) / 100, 0) as pos
  from gsc_query_detail d join gsc_pages p on p.id = d.page_id join gsc_queries q on q.id = d.query_id
 where d.site_id = $site_id and p.site_id = $site_id and d.day >= $from ${type === null ? "" : `and d.type = ${type}`}
   and p.page in (${pages.map((_, i) => `$p${i}`).join(", ")})
   ${keywords.length ? `and q.query in (${keywords.map((_, i) => `$k${i}`).join(", ")})` : ""}
 ${groupOrder}
 limit ${limit}`,
    {
      site_id: s.siteId,
      from: s.since ? dayNumber(s.since) : 0,
      ...Object.fromEntries(pages.map((p, i) => [`p${i}`, p])),
      ...Object.fromEntries(keywords.map((k, i) => [`k${i}`, k])),
    },
  );
}

const scopes = (): Scope[] => [
  { siteId: site, searchType: "web" },
  { siteId: site, searchType: "all" },
  { siteId: site, searchType: "image", since: addDays(first, 9) },
  { siteId: site, searchType: "web", since: addDays(first, 23) },
  { siteId: site, searchType: "all", since: addDays(first, 39) },
  { siteId: site, searchType: "web", since: addDays(first, 60) },
  { siteId: site, searchType: "discover" },
];
const pageSets = [[`${H}/a`], [`${H}/c`, `${H}/b`], [`${H}/b`, `${H}/missing`], [`${H}/p3`, `${H}/a`, `${H}/c`]];

describe("MCP reads of given pages' detail: the same answers as a filter over every row", () => {
  test("pages_queries", async () => {
    let rows = 0;
    for (const s of scopes())
      for (const pages of pageSets)
        for (const limit of [1000, 7]) {
          const got = await findPagesQueries(t.db, { ...s, pages, limit });
          const want = (
            await reference(
              s,
              pages,
              [],
              "p.page as page, q.query as query",
              "group by p.page, q.query order by p.page, impressions desc, q.query",
              limit,
            )
          ).map((r) => ({
            page: String(r.page),
            query: String(r.query),
            clicks: Number(r.clicks),
            impressions: Number(r.impressions),
            avg_position: Number(r.pos),
          }));
          expect({ s, pages, limit, got }).toEqual({ s, pages, limit, got: want });
          rows += got.length;
        }
    expect(rows).toBeGreaterThan(100);
  });

  test("show_page_queries", async () => {
    for (const s of scopes())
      for (const [page] of pageSets) {
        const got = await findPageQueries(t.db, { ...s, page: page!, limit: 5 });
        const want = (await reference(s, [page!], [], "q.query as query", "group by q.query order by impressions desc, q.query", 5)).map(
          (r) => ({
            query: String(r.query),
            clicks: Number(r.clicks),
            impressions: Number(r.impressions),
            avg_position: Number(r.pos),
          }),
        );
        expect({ s, page, got }).toEqual({ s, page, got: want });
      }
  });

  test("track_pages", async () => {
    let rows = 0;
    for (const s of scopes())
      for (const pages of pageSets)
        for (const keywords of [[], ["q3", "q7", "none"]]) {
          const got = await trackPages(t.db, { ...s, pages, keywords, limit: 60 });
          const want = (
            await reference(
              s,
              pages,
              keywords,
              "d.day as day, p.page as page, q.query as query",
              "group by d.day, p.page, q.query order by d.day desc, clicks desc, p.page, q.query",
              60,
            )
          ).map((r) => ({
            date: dayDate(Number(r.day)),
            page: String(r.page),
            query: String(r.query),
            clicks: Number(r.clicks),
            impressions: Number(r.impressions),
            position: Number(r.pos),
          }));
          expect({ s, pages, keywords, got }).toEqual({ s, pages, keywords, got: want });
          rows += got.length;
        }
    expect(rows).toBeGreaterThan(300);
  });
});

describe.skipIf(testEngine === "pg")("SQLite plans of the page reads", () => {
  test("the pages' rows are sought per day, type and page on the detail's key, not read from the site's whole range", async () => {
    const reader = asSqlite(t.db).raw.reader;
    const { queryPool } = await import("../src/analytics/pool.ts");
    const pool = queryPool(asSqlite(t.db));
    const all = pool.all;
    const seen: string[] = [];
    pool.all = ((sql: string, params: never) => {
      seen.push(sql);
      return all.call(pool, sql, params);
    }) as typeof pool.all;
    try {
      await findPagesQueries(t.db, { siteId: site, searchType: "all", pages: [`${H}/a`], limit: 10 });
      await findPageQueries(t.db, { siteId: site, searchType: "web", since: first, page: `${H}/a`, limit: 10 });
      await trackPages(t.db, { siteId: site, searchType: "web", since: first, pages: [`${H}/a`], keywords: ["q1"], limit: 10 });
    } finally {
      pool.all = all;
    }
    expect(seen.length).toBe(3);
    for (const q of seen) {
      const plan = reader
        .query<{ detail: string }, []>(`explain query plan ${q}`)
        .all()
        .map((r) => r.detail)
        .join("\n");
      expect({ q, plan }).toEqual({
        q,
        plan: expect.stringContaining("SEARCH d USING PRIMARY KEY (site_id=? AND day=? AND type=? AND page_id=?)"),
      });
    }
  });
});
