import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../src/app.ts";
import { PG_SEARCH_INDEXED_SQL, PG_SEARCH_SHORT_SQL } from "../src/db/pg/search.ts";
import { toPositional } from "../src/db/pg/named.ts";
import { SEARCH_INDEXED_SQL, SEARCH_SHORT_SQL } from "../src/db/sqlite/search.ts";
import { containsPattern } from "../src/db/sql.ts";
import { searchQueries } from "../src/search/queries.ts";
import type { SourceRow } from "../src/sync/source.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";
import { addSite, storeRows } from "./helpers/rows.ts";

// GET /api/v1/sites/{site_id}/queries/search over rows stored the way the daily sync stores them.

let t: ReturnType<typeof tempDb>;
let app: ReturnType<typeof createApp>;
let site: number;
let other: number;

async function search(qs: string, id = site) {
  const res = await app.request(`/api/v1/sites/${id}/queries/search?${qs}`);
  const text = await res.text();
  expect(text).not.toMatch(/SQLITE|stack/);
  return { status: res.status, json: JSON.parse(text) };
}

const row = (
  query: string,
  clicks: number,
  impressions: number,
  ctr: number,
  position: number,
  page = "https://x.example/",
  device = "MOBILE",
): SourceRow => ({
  page,
  query,
  device,
  clicks,
  impressions,
  ctr,
  position,
});

beforeAll(async () => {
  t = tempDb();
  app = createApp(t.db);
  const mk = async (domain: string) =>
    (
      (await (
        await app.request("/api/v1/sites", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ domain, name: domain }),
        })
      ).json()) as { id: number }
    ).id;
  site = await mk("sc-domain:search.example");
  other = await mk("sc-domain:other.example");
  await storeRows(t.db, site, "2026-03-01", "web", [
    row("Running Shoes", 10, 100, 0.1, 3),
    row("running shoes", 5, 50, 0.1, 4, "https://x.example/a"),
    row("running shoes", 1, 10, 0.1, 6, "https://x.example/a", "DESKTOP"),
    row("best trail running", 2, 40, 0.05, 8),
    row("100% cotton shirt", 7, 70, 0.1, 2),
    row("1000 cotton shirts", 3, 30, 0.1, 5),
    row("a_b testing", 4, 40, 0.1, 9),
    row("abb testing", 9, 90, 0.1, 9),
    row("back\\slash query", 1, 10, 0.1, 1),
  ]);
  await storeRows(t.db, site, "2026-03-01", "image", [row("running shoes", 2, 20, 0.1, 2)]);
  await storeRows(t.db, site, "2026-03-02", "web", [row("running shoes", 20, 200, 0.1, 2), row("best trail running", 1, 10, 0.1, 10)]);
  await storeRows(t.db, site, "2026-03-03", "web", [row("running shoes", 4, 40, 0.1, 5)]);
  // Fewest clicks, most impressions: first in the original's order (total_impressions desc).
  await storeRows(t.db, site, "2026-03-04", "web", [row("running socks", 1, 500, 0.002, 7)]);
  await storeRows(t.db, other, "2026-03-02", "web", [row("running shoes", 1000, 2000, 0.5, 1)]);
});
afterAll(() => t.cleanup());

describe("results", () => {
  test("partial, case-insensitive match; totals per query; most impressions first (reference §1.4); other sites excluded", async () => {
    const r = await search("search_term=RUNNING");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      site_id: site,
      search_term: "RUNNING",
      // Dates omitted (the original required them): the range is the site's data, written the original's way.
      date_range: "2026-03-01 to 2026-03-04",
      start_date: null,
      end_date: null,
      total_queries_found: 4,
      total_matches: 4,
      queries: [
        { query: "running socks", total_clicks: 1, total_impressions: 500, avg_ctr: 0.002, avg_position: 7, days_appeared: 1 },
        // SQLite groups by exact text: "running shoes" and "Running Shoes" are two queries.
        {
          query: "running shoes",
          total_clicks: 32,
          total_impressions: 320,
          avg_ctr: expect.closeTo(0.1, 9),
          // Σ position × impressions / Σ impressions: (4×50 + 6×10 + 2×20 + 2×200 + 5×40) / 320 (the plain mean was 3.8).
          avg_position: expect.closeTo(900 / 320, 9),
          days_appeared: 3,
        },
        {
          query: "Running Shoes",
          total_clicks: 10,
          total_impressions: 100,
          avg_ctr: expect.closeTo(0.1, 9),
          avg_position: 3,
          days_appeared: 1,
        },
        {
          query: "best trail running",
          total_clicks: 3,
          total_impressions: 50,
          avg_ctr: expect.closeTo(3 / 50, 9), // Σ clicks / Σ impressions (the mean of 0.05 and 0.1 was 0.075)
          avg_position: expect.closeTo(420 / 50, 9), // (8×40 + 10×10) / 50
          days_appeared: 2,
        },
      ],
    });
  });

  test("date range bounds both ends, inclusive", async () => {
    const r = await search("search_term=running%20shoes&start_date=2026-03-02&end_date=2026-03-03");
    expect(r.json).toMatchObject({ date_range: "2026-03-02 to 2026-03-03", start_date: "2026-03-02", end_date: "2026-03-03" });
    expect(r.json.queries).toEqual([
      {
        query: "running shoes",
        total_clicks: 24,
        total_impressions: 240,
        avg_ctr: expect.closeTo(0.1, 9),
        avg_position: 2.5, // (2×200 + 5×40) / 240
        days_appeared: 2,
      },
    ]);
    const from = await search("search_term=running&start_date=2026-03-02");
    expect(from.json.date_range).toBe("2026-03-02 to 2026-03-04");
    expect(from.json.queries.map((q: { query: string }) => q.query)).toEqual(["running socks", "running shoes", "best trail running"]);
    const none = await search("search_term=running&end_date=2026-02-28");
    expect(none.json).toMatchObject({ date_range: "2026-03-01 to 2026-02-28", total_queries_found: 0, total_matches: 0, queries: [] });
  });

  test("limit cuts the list; total_queries_found counts the rows returned (as the original), total_matches every match", async () => {
    const r = await search("search_term=running&limit=2");
    expect(r.json).toMatchObject({ total_queries_found: 2, total_matches: 4 });
    expect(r.json.queries.map((q: { query: string }) => q.query)).toEqual(["running socks", "running shoes"]);
  });

  test("a site without rows: empty result, the range says none", async () => {
    const r = await search("search_term=running", other + 0);
    expect(r.json.date_range).toBe("2026-03-02 to 2026-03-02");
    const empty = await app.request("/api/v1/sites", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ domain: "sc-domain:empty.example", name: "E" }),
    });
    const id = ((await empty.json()) as { id: number }).id;
    expect((await search("search_term=running", id)).json).toMatchObject({
      date_range: "none to none",
      total_queries_found: 0,
      total_matches: 0,
      queries: [],
    });
  });

  const literal = [
    { term: "%", expected: ["100% cotton shirt"] },
    { term: "0%", expected: ["100% cotton shirt"] },
    { term: "_", expected: ["a_b testing"] },
    { term: "a_b", expected: ["a_b testing"] },
    { term: "\\", expected: ["back\\slash query"] },
    { term: "cotton", expected: ["100% cotton shirt", "1000 cotton shirts"] },
    { term: "% c", expected: ["100% cotton shirt"] },
    { term: "a_b t", expected: ["a_b testing"] },
    { term: "k\\s", expected: ["back\\slash query"] },
  ];
  for (const c of literal) {
    test(`LIKE wildcards are literal: ${JSON.stringify(c.term)}`, async () => {
      const r = await search(`search_term=${encodeURIComponent(c.term)}`);
      expect(r.status).toBe(200);
      expect(r.json.queries.map((q: { query: string }) => q.query)).toEqual(c.expected);
    });
  }

  test("the pattern escapes %, _ and the escape character", () => {
    expect(containsPattern("a%b_c\\d")).toBe("%a\\%b\\_c\\\\d%");
  });
});

describe("errors", () => {
  const cases = [
    { qs: "", status: 400, message: /search_term/ },
    { qs: "search_term=", status: 400, message: /search_term/ },
    { qs: "search_term=%20%20", status: 400, message: /search_term/ },
    { qs: "search_term=x&start_date=2026-13-01", status: 400, message: /start_date/ },
    { qs: "search_term=x&end_date=yesterday", status: 400, message: /end_date/ },
    { qs: "search_term=x&start_date=2026-03-05&end_date=2026-03-01", status: 400, message: /start_date is after end_date/ },
    { qs: "search_term=x&limit=0", status: 400, message: /limit/ },
    { qs: "search_term=x&limit=1001", status: 400, message: /limit/ },
    { qs: `search_term=${"x".repeat(201)}`, status: 400, message: /search_term/ },
    // SQLite's LIKE stops at a NUL: "%00" alone would have matched every query. Control characters are refused.
    { qs: "search_term=%00", status: 400, message: /search_term: must not contain control characters/ },
    { qs: "search_term=run%00", status: 400, message: /control characters/ },
    { qs: "search_term=%00run", status: 400, message: /control characters/ },
    { qs: "search_term=run%0Ashoes", status: 400, message: /control characters/ },
    { qs: "search_term=run%09shoes", status: 400, message: /control characters/ },
    { qs: "search_term=run%7F", status: 400, message: /control characters/ },
    { qs: "search_term=run%C2%85", status: 400, message: /control characters/ },
  ];
  for (const c of cases) {
    test(`?${c.qs.slice(0, 50)} -> ${c.status}`, async () => {
      const r = await search(c.qs);
      expect(r.status).toBe(c.status);
      expect(r.json.error.code).toBe("validation_failed");
      expect(r.json.error.message).toMatch(c.message);
    });
  }

  test("control characters are refused by the query function itself, and on the dashboard's query page", async () => {
    for (const term of ["\u0000", "run\u0000", "a\u007fb"]) {
      await expect(searchQueries(t.db, { siteId: site, term, startDate: null, endDate: null, limit: 10 })).rejects.toThrow(
        /control characters/,
      );
    }
    const page = await app.request(`/ui/queries?site_id=${site}&q=%00`);
    expect(page.status).toBe(400);
    expect(await page.text()).toContain("The search term contains control characters.");
  });

  test("unknown site -> 404; bad site id -> 400", async () => {
    expect((await search("search_term=x", 999_999)).status).toBe(404);
    const bad = await app.request("/api/v1/sites/abc/queries/search?search_term=x");
    expect(bad.status).toBe(400);
  });
});

test.skipIf(testEngine === "pg")(
  "query plans (SQLite: FTS5): the trigram index (3+ chars) or the site's query list (1-2 chars), then the rollup's key per query and stored day; never a scan of rows",
  () => {
    const plan = (sql: string) =>
      asSqlite(t.db)
        .raw.reader.query<{ detail: string }, []>(`explain query plan ${sql.replace(/\$\w+/g, "?")}`)
        .all()
        .map((r) => r.detail)
        .join("\n");
    const indexed = plan(SEARCH_INDEXED_SQL);
    expect(indexed).toMatch(/SCAN f VIRTUAL TABLE INDEX/);
    // A seek per matched query and stored day (the rollup is keyed (site_id, type, day, query_id)).
    const rowsByQuery = /SEARCH g USING PRIMARY KEY \(site_id=\? AND type=\? AND day=\? AND query_id=\?\)/;
    expect(indexed).toMatch(rowsByQuery);
    // Queries not yet in the FTS index: only the ids past the mark, not every query of the site.
    expect(indexed).toContain("SEARCH q USING INTEGER PRIMARY KEY (rowid>?)");
    expect(indexed).not.toMatch(/SEARCH q USING COVERING INDEX gsc_queries_site_query_unique/);
    const short = plan(SEARCH_SHORT_SQL);
    expect(short).toMatch(/SEARCH q USING COVERING INDEX gsc_queries_site_query_unique \(site_id=\?\)/);
    // The matches sorted by id before the rollup is read: its ranges then follow its key.
    expect(short).toMatch(/gsc_queries_site_query_unique \(site_id=\?\)\nUSE TEMP B-TREE FOR ORDER BY/);
    expect(short).toMatch(rowsByQuery);
    for (const p of [indexed, short]) expect(p).not.toMatch(/SCAN (g|gsc_query_detail|gsc_day_query_totals)\b/);
  },
);

test.skipIf(testEngine === "sqlite")(
  "query plans (PostgreSQL): a selective term through the pg_trgm index, then the rollup's (site_id, query_id, ...) primary key; short terms never the trigram index",
  async () => {
    const pool = t.db.pg!.pool;
    const client = await pool.connect();
    try {
      // A site with 20,000 queries (the triggers list them in gsc_queries) and fresh statistics: on a few
      // rows the planner rightly prefers a scan to the trigram index.
      const big = await addSite(t.db, "sc-domain:plans.example");
      await client.query("insert into gsc_pages (site_id, page) values ($1, '/')", [big]);
      await client.query(`insert into gsc_queries (site_id, query) select $1, 'plan ' || md5(i::text) from generate_series(1, 20000) i`, [
        big,
      ]);
      const day = 20513; // 2026-03-01
      await client.query(
        `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, impressions)
         select $1, $2, 1, (select id from gsc_pages where site_id = $1), id, 2, 1 from gsc_queries where site_id = $1`,
        [big, day],
      );
      await client.query(
        `insert into gsc_day_query_totals (site_id, day, type, query_id, impressions)
         select site_id, day, type, query_id, impressions from gsc_query_detail where site_id = $1`,
        [big],
      );
      // VACUUM also moves the GIN index's pending list (fastupdate) into the index, as autovacuum does.
      await client.query("vacuum analyze gsc_query_detail");
      await client.query("vacuum analyze gsc_day_query_totals");
      await client.query("vacuum analyze gsc_queries");
      const plan = async (sql: string, term: string) => {
        const pattern = containsPattern(term);
        const q = toPositional(sql, { site_id: big, pattern, lower: pattern.toLowerCase(), start_day: 0, end_day: 2932896, limit: 10 });
        const rows = (await client.query(`explain ${q.text}`, q.values)).rows as { "QUERY PLAN": string }[];
        return rows.map((r) => r["QUERY PLAN"]).join("\n");
      };
      // A selective term (a piece of one md5): its trigrams are rare, so the GIN index is the cheap path.
      const indexed = await plan(PG_SEARCH_INDEXED_SQL, new Bun.CryptoHasher("md5").update("1234").digest("hex").slice(3, 11));
      expect(indexed).toContain("gsc_queries_query_trgm_idx");
      const rowsByQuery = /Index (Only )?Scan using gsc_day_query_totals_site_id_query_id_day_type_pk on gsc_day_query_totals g/;
      expect(indexed).toMatch(rowsByQuery);
      expect(indexed).not.toMatch(/Seq Scan/);
      // 1-2 characters have no trigram: the site's query list (the planner may scan it when the term is
      // common, as "ab" is here: 1 query in 5); the trigram index would have to read all of itself.
      const short = await plan(PG_SEARCH_SHORT_SQL, "ab");
      expect(short).not.toContain("trgm");
    } finally {
      client.release();
    }
  },
);
