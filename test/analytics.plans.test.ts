import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { SQLQueryBindings } from "bun:sqlite";
import { queryPool } from "../src/analytics/pool.ts";
import { exportQuery, pageKeywordQuery, rankingQuery, type RankingOptions } from "../src/analytics/queries.ts";
import { findSiteDataDayBounds } from "../src/analytics/totals.ts";
import { findRankingDataV2 } from "../src/compat/queries.ts";
import type { SqliteDb } from "../src/db/index.ts";
import { toPositional } from "../src/db/pg/named.ts";
import { comparePeriods, findBrandSplit, findCannibalization, findOverview, findTop } from "../src/insights/queries.ts";
import {
  comparePeriodsBy,
  comparePeriodTotals,
  findKeywordPages,
  findNewestDay,
  findPageQueries,
  findPagesQueries,
  searchKeywords,
  trackPages,
} from "../src/mcp/queries.ts";
import { asSqlite, tempDb, testEngine } from "./helpers/db.ts";
import { addSite, storeRows } from "./helpers/rows.ts";

// Query-level reads go to the compact detail (gsc_query_detail) and the day x query rollup with integer day
// numbers, so each is an index seek on (site_id, day, ...) or (site_id, query_id, day): never a scan of the
// site's whole detail, as a filter on the gsc_performance_data VIEW's computed date was (issue 18).

let t: ReturnType<typeof tempDb>;
let site = 0;
const H = "https://plans.example";

beforeAll(async () => {
  t = tempDb();
  site = await addSite(t.db, "sc-domain:plans.example");
  for (const day of ["2026-10-01", "2026-10-02"]) {
    await storeRows(t.db, site, day, "web", [
      { page: `${H}/a`, query: "shoes", device: "MOBILE", clicks: 1, impressions: 10, ctr: 0.1, position: 2 },
      { page: `${H}/b`, query: "boots", device: "DESKTOP", clicks: 2, impressions: 20, ctr: 0.1, position: 3 },
    ]);
  }
});
afterAll(() => t.cleanup());

const base = { start: "2026-10-01", end: "2026-10-31", limit: null, searchType: null, device: null, exact: null, partial: null };
/** The ranking-data request shapes: [name, options, whether the rollup answers]. */
const rankingShapes = (): [string, RankingOptions, boolean][] => [
  ["raw rows", { ...base, siteId: site, groupBy: "query", daily: false }, false],
  ["raw rows, the first 1000", { ...base, siteId: site, groupBy: "query", daily: false, limit: 1000 }, false],
  ["daily by query", { ...base, siteId: site, groupBy: "query", daily: true }, false],
  [
    "daily by page, one device and type",
    { ...base, siteId: site, groupBy: "page", daily: true, device: "MOBILE", searchType: "web" },
    false,
  ],
  ["exact queries, raw", { ...base, siteId: site, groupBy: "query", daily: false, exact: ["shoes", "boots"] }, false],
  ["exact queries, daily (the rollup)", { ...base, siteId: site, groupBy: "query", daily: true, exact: ["shoes"] }, true],
  ["exact pages, daily", { ...base, siteId: site, groupBy: "page", daily: true, exact: [`${H}/a`] }, false],
  ["partial queries", { ...base, siteId: site, groupBy: "query", daily: true, partial: ["sho"] }, false],
];

/** The detail read by its key's (site_id, day) prefix: a SEARCH with a day bound, never a SCAN. */
const detailSeek = /SEARCH d USING PRIMARY KEY \(site_id=\? AND day[<>=]/;
// The rollup keyed (site_id, type, day, query_id): a term's row of each stored day of the window (rollupDaysCte).
const rollupSeek = /SEARCH r USING PRIMARY KEY \(site_id=\? AND type=\? AND day=\? AND query_id=\?\)/;

describe.skipIf(testEngine === "pg")("SQLite query plans of the analytics reads", () => {
  const plan = (sql: string) =>
    asSqlite(t.db)
      .raw.reader.query<{ detail: string }, []>(`explain query plan ${sql.replace(/\$\w+/g, "?")}`)
      .all()
      .map((r) => r.detail)
      .join("\n");

  test("ranking-data: every request shape seeks the detail on (site_id, day) or the rollup on (site_id, type, day, query_id)", () => {
    for (const [name, o, rollup] of rankingShapes()) {
      const p = plan(rankingQuery("sqlite", o).sql);
      expect({ name, p }).toEqual({ name, p: expect.stringMatching(rollup ? rollupSeek : detailSeek) });
      expect({ name, p }).toEqual({ name, p: expect.not.stringMatching(/SCAN (d|r|gsc_query_detail|gsc_day_query_totals)\b/) });
    }
  });

  test("export: the detail in key order from (site_id, day), each day's rows sorted (no sort of the whole site)", () => {
    const p = plan(exportQuery("sqlite", { siteId: site, start: "2026-10-01", end: "2026-10-31", searchType: "web" }).sql);
    expect(p).toMatch(detailSeek);
    expect(p).toContain("USE TEMP B-TREE FOR LAST 4 TERMS OF ORDER BY");
    expect(plan(exportQuery("sqlite", { siteId: site }).sql)).toMatch(/SEARCH d USING PRIMARY KEY \(site_id=\?\)/);
  });

  test("page-keyword-performance: the keywords from the detail's (site_id, day) range", async () => {
    const q = await pageKeywordQuery(t.db, { siteId: site, since: "2026-10-01", urlContains: null, limit: null });
    const p = plan(q.sql);
    expect(p).toMatch(detailSeek);
    expect(p).not.toMatch(/SCAN (d|gsc_query_detail)\b/);
  });
});

/** The SQL texts a function prepares on the SQLite reader (Drizzle's reads). */
async function preparedBy(db: SqliteDb, fn: () => Promise<unknown>): Promise<string[]> {
  const reader = db.raw.reader;
  const prepare = reader.prepare;
  const query = reader.query;
  // Slow reads run in the query processes (src/analytics/pool.ts): their SQL is seen where it is sent.
  const pool = queryPool(db);
  const all = pool.all;
  const seen: string[] = [];
  reader.prepare = ((sql: string, ...rest: unknown[]) => {
    seen.push(sql);
    return (prepare as (...a: unknown[]) => unknown).call(reader, sql, ...rest);
  }) as typeof reader.prepare;
  // Reads run in the worker a slice at a time (the packed day x query rows) use the reader's cached statements.
  reader.query = ((sql: string) => {
    seen.push(sql);
    return query.call(reader, sql);
  }) as typeof reader.query;
  pool.all = ((sql: string, params: SQLQueryBindings) => {
    seen.push(sql);
    return all.call(pool, sql, params);
  }) as typeof pool.all;
  try {
    await fn();
  } finally {
    reader.prepare = prepare;
    reader.query = query;
    pool.all = all;
  }
  return seen;
}

describe.skipIf(testEngine === "pg")("SQLite query plans of the MCP tools, insights and v2 ranking-data (Drizzle)", () => {
  const plan = (sql: string) =>
    asSqlite(t.db)
      .raw.reader.query<{ detail: string }, []>(`explain query plan ${sql}`)
      .all()
      .map((r) => r.detail)
      .join("\n");
  const period = (start: string, end: string) => ({ start, end });
  const scope = () => ({ siteId: site, searchType: "web", since: "2026-10-01" });
  const filters = () => ({ siteId: site, start: "2026-10-01", end: "2026-10-31", searchType: "web" });
  const reads: [string, () => Promise<unknown>][] = [
    ["mcp findPageQueries", () => findPageQueries(t.db, { ...scope(), page: `${H}/a`, limit: 10 })],
    ["mcp findKeywordPages", () => findKeywordPages(t.db, { ...scope(), keyword: "shoes", limit: 10 })],
    ["mcp searchKeywords", () => searchKeywords(t.db, { ...scope(), pattern: "%sho%", limit: 10 })],
    ["mcp trackPages", () => trackPages(t.db, { ...scope(), pages: [`${H}/a`], keywords: ["shoes"], limit: 10 })],
    ["mcp findPagesQueries", () => findPagesQueries(t.db, { ...scope(), pages: [`${H}/a`], limit: 10 })],
    ["mcp findNewestDay", () => findNewestDay(t.db, scope())],
    [
      "mcp comparePeriodTotals",
      () =>
        comparePeriodTotals(t.db, { ...scope(), period1: period("2026-10-01", "2026-10-01"), period2: period("2026-10-02", "2026-10-02") }),
    ],
    [
      "mcp comparePeriodsBy query",
      () =>
        comparePeriodsBy(t.db, {
          ...scope(),
          period1: period("2026-10-01", "2026-10-01"),
          period2: period("2026-10-02", "2026-10-02"),
          by: "query",
          order: "losers_first",
          limit: 10,
        }),
    ],
    ["insights findOverview", () => findOverview(t.db, filters())],
    ["insights findTop query", () => findTop(t.db, { ...filters(), by: "query", limit: 10, contains: "sho" })],
    ["insights findTop query, one device", () => findTop(t.db, { ...filters(), device: "MOBILE", by: "query", limit: 10 })],
    [
      "insights comparePeriods query",
      () =>
        comparePeriods(t.db, {
          ...filters(),
          by: "query",
          previous: period("2026-10-01", "2026-10-01"),
          current: period("2026-10-02", "2026-10-02"),
          limit: 5,
        }),
    ],
    ["insights findCannibalization", () => findCannibalization(t.db, { ...filters(), minShare: 0.1, minImpressions: 1, limit: 10 })],
    ["insights findBrandSplit", () => findBrandSplit(t.db, { ...filters(), terms: ["shoe"] })],
    [
      "v2 ranking-data by query",
      () =>
        findRankingDataV2(t.db, {
          siteId: site,
          start: "2026-10-01",
          end: "2026-10-31",
          groupBy: ["query"],
          queries: ["shoes"],
          pages: null,
          exact: true,
          limit: 10,
        }),
    ],
    [
      "v2 ranking-data by query and page, partial pages",
      () =>
        findRankingDataV2(t.db, {
          siteId: site,
          start: "2026-10-01",
          end: "2026-10-31",
          groupBy: ["query", "page", "device"],
          queries: null,
          pages: ["/a"],
          exact: false,
          limit: 10,
        }),
    ],
  ];

  test("a site's newest day of search types it has no rows of: the detail's stored days by seeks on (site_id, day, type), not its rows read backwards", async () => {
    for (const [type, last] of [
      ["image", null],
      ["web", "2026-10-02"],
    ] as const) {
      let bounds: Awaited<ReturnType<typeof findSiteDataDayBounds>> | undefined;
      const texts = (
        await preparedBy(asSqlite(t.db), async () => {
          bounds = await findSiteDataDayBounds(t.db, { site_id: site }, type);
        })
      ).filter((q) => /gsc_query_detail[\s\S]*\btype in\b/.test(q));
      expect(bounds?.last ?? null).toBe(last);
      expect(texts.length).toBe(1);
      expect(plan(texts[0]!)).toContain("SEARCH y USING PRIMARY KEY (site_id=? AND day=? AND type=?)");
    }
  });

  test("each read of the detail or the rollups is a SEARCH on (site_id, day) (the rollup's (site_id, type, day)), never a SCAN", async () => {
    for (const [name, fn] of reads) {
      const texts = (await preparedBy(asSqlite(t.db), fn)).filter((q) =>
        /gsc_query_detail|gsc_day_query_totals|gsc_day_query_sums|gsc_performance_data/.test(q),
      );
      expect({ name, n: texts.length > 0 }).toEqual({ name, n: true });
      for (const q of texts) {
        // Raw SQL names its tables by alias (`from gsc_query_detail g`): the plan is read with the tables' names.
        const alias = new Map<string, string>();
        for (const [, table, a] of q.matchAll(/\b(gsc_query_detail|gsc_day_query_totals)"?\s+(?:as\s+)?(\w+)/gi))
          if (!/^(where|join|inner|left|on|group|order|limit|union|as)$/i.test(a!)) alias.set(a!, table!);
        const p = plan(q).replace(/\b(SCAN|SEARCH) (\w+)/g, (_, op: string, n: string) => `${op} ${alias.get(n) ?? n}`);
        expect({ name, q, p }).toEqual({
          name,
          q,
          p: expect.not.stringMatching(/SCAN (gsc_query_detail|gsc_day_query_totals|gsc_day_query_sums)\b/),
        });
        // A site's first or last day: one seek at an end of the site's range of the key (`order by day limit 1`).
        const edge = /order by day( desc)? limit 1\b/i.test(q);
        expect({ name, q, p }).toEqual({
          name,
          q,
          p: expect.stringMatching(
            edge
              ? /SEARCH (gsc_query_detail|gsc_day_query_totals|gsc_day_query_sums) USING PRIMARY KEY \(site_id=\?\)/
              : // gsc_day_query_sums is a rowid table (a blob a row): its key is the primary key's own index.
                /SEARCH (gsc_query_detail|gsc_day_query_totals|gsc_day_query_sums) USING (PRIMARY KEY|COVERING INDEX \w+|INDEX sqlite_autoindex_gsc_day_query_sums_1) \(site_id=\? AND (day|type)/,
          ),
        });
      }
    }
  });
});

describe.skipIf(testEngine === "sqlite")("PostgreSQL query plans of the analytics reads", () => {
  test("on a site with a year of detail, a month's ranking-data and export use the detail's key, no Seq Scan on it", async () => {
    const client = await t.db.pg!.pool.connect();
    try {
      // 365 days x 200 rows for a second site, and fresh statistics: a month is ~8% of the site's rows.
      const big = await addSite(t.db, "sc-domain:big-plans.example");
      await client.query(`insert into gsc_pages (site_id, page) select $1, 'https://big.example/' || i from generate_series(1, 20) i`, [
        big,
      ]);
      await client.query(`insert into gsc_queries (site_id, query) select $1, 'q ' || i from generate_series(1, 10) i`, [big]);
      await client.query(
        `insert into gsc_query_detail (site_id, day, type, page_id, query_id, device, clicks, impressions, sum_position)
         select $1, 20454 + d, 1, p.id, q.id, 2, 1, 10, 1000
           from generate_series(0, 364) d, gsc_pages p, gsc_queries q where p.site_id = $1 and q.site_id = $1`,
        [big],
      );
      await client.query(
        `insert into gsc_day_query_totals (site_id, day, type, query_id, clicks, impressions, sum_position)
         select site_id, day, type, query_id, sum(clicks), sum(impressions), sum(sum_position) from gsc_query_detail
          where site_id = $1 group by site_id, day, type, query_id`,
        [big],
      );
      for (const table of ["gsc_query_detail", "gsc_day_query_totals", "gsc_pages", "gsc_queries"]) await client.query(`analyze ${table}`);
      const explain = async (q: { sql: string; params: Record<string, string | number | null> }) => {
        const p = toPositional(q.sql, q.params);
        return ((await client.query(`explain ${p.text}`, p.values)).rows as { "QUERY PLAN": string }[])
          .map((r) => r["QUERY PLAN"])
          .join("\n");
      };
      const month = { start: "2026-03-01", end: "2026-03-31" };
      for (const [name, o, rollup] of rankingShapes()) {
        const p = await explain(
          rankingQuery("pg", {
            ...o,
            ...month,
            siteId: big,
            exact: o.exact && (o.groupBy === "query" ? ["q 1"] : ["https://big.example/1"]),
          }),
        );
        expect({ name, p }).toEqual({ name, p: expect.not.stringMatching(/Seq Scan on gsc_(query_detail|day_query_totals)/) });
        // Either direction reads by the key: daily ranking's newest-first order may walk it backward (cc61aa5).
        expect({ name, p }).toEqual({
          name,
          p: expect.stringMatching(
            rollup
              ? /Index (Only )?Scan (Backward )?(on|using) gsc_day_query_totals_\w+/
              : /Index (Only )?Scan (Backward )?(on|using) gsc_query_detail_\w+_pk/,
          ),
        });
      }
      // One exact query (the rollup's read), as the service runs it: a named statement, whose generic plan (the one
      // PostgreSQL caches after 5 custom ones when it is not dearer) must know the terms are one row: unnest of a
      // parameter is 10 rows to it, which made the generic plan dearer, so every request was planned again (0 generic
      // plans in 30 runs at 20 M rows).
      const rollupShape = rankingShapes().find(([, , rollup]) => rollup)![1];
      const one = rankingQuery("pg", { ...rollupShape, ...month, siteId: big, exact: ["q 1"] });
      const named = toPositional(one.sql, one.params);
      await client.query(`prepare one_term_rollup as ${named.text}`);
      await client.query("set plan_cache_mode = force_generic_plan");
      // EXECUTE's arguments are SQL, not bound parameters: literals.
      const args = named.values
        .map((v) => (v === null ? "null" : typeof v === "number" ? String(v) : `'${String(v).replaceAll("'", "''")}'`))
        .join(", ");
      const generic = ((await client.query(`explain execute one_term_rollup(${args})`)).rows as { "QUERY PLAN": string }[])
        .map((r) => r["QUERY PLAN"])
        .join("\n");
      await client.query("reset plan_cache_mode");
      await client.query("deallocate one_term_rollup");
      // The one term folds into the dictionary's lookup (query = $1): no unnest estimated at 10 rows.
      expect(generic).not.toMatch(/unnest/);
      expect(generic).toMatch(/Index (Only )?Scan (Backward )?using gsc_day_query_totals_\w+ on gsc_day_query_totals/);
      const p = await explain(exportQuery("pg", { siteId: big, ...month }));
      expect(p).not.toMatch(/Seq Scan on gsc_query_detail/);
    } finally {
      client.release();
    }
  });
});
