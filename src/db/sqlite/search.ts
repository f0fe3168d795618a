import { count, eq, gt, max, sql } from "drizzle-orm";
import type { Orm, SqliteDb } from "../index.ts";
import { dayDate, dayNumber } from "../../sync/grains.ts";
import { checkBudget, currentBudget } from "../budget.ts";
import { rollupDaysCte } from "../../analytics/detail.ts";
import { gscQueries, gscQueriesIndexed } from "./schema.ts";

// Query search on SQLite (migrations/sqlite/0006_query_search_fts.sql): an FTS5 trigram index over each
// site's distinct queries (gsc_queries), written in batches by indexPendingQueries. src/search/queries.ts
// is the entry point; src/db/pg/search.ts is the PostgreSQL side.

export type SearchParams = { site_id: number; pattern: string; start: string; end: string; limit: number };
export type SearchRow = {
  query: string;
  total_clicks: number;
  total_impressions: number;
  avg_ctr: number;
  avg_position: number;
  days_appeared: number;
  found: number;
};

// Totals of the matched queries (`matched`: their gsc_queries ids and texts, defined by each search below)
// from the day × query rollup, keyed (site_id, type, day, query_id) WITHOUT ROWID (migration 0032): each matched
// query's row of each stored day of the window (rollupDaysCte: a seek per type and day), a seek each, every
// search type stored. CROSS JOIN keeps the matched queries as the outer loop (SQLite never reorders it): left to itself
// the planner may walk every row of the window and look each query up in the matched list. Days are day numbers
// ($start_day, $end_day). The sums are kept once (materialized) and counted there for `found`, not by a window
// over every row (`count(*) over ()` buffered and re-read them all). `days`: the days a query appeared,
// `count(distinct g.day)`; a window holding one search type has at most one row per query and day, so there
// `count(*)` is the same number without a distinct set per query (windowHasOneType). A seek per query and day:
// for a few matches (searchSqlite takes the packed day rows for more).
const totalsOf = (matched: string, days = "count(distinct g.day)") => `with recursive matched(id, query) as (${matched}),
${rollupDaysCte(null, "$start_day", "$end_day")},
r as materialized (
select m.query as query, sum(g.clicks) as c, sum(g.impressions) as i, sum(g.sum_position) as sp, ${days} as days
  from matched m
 cross join rd
 cross join gsc_day_query_totals g
    on g.site_id = $site_id and g.type = rd.type and g.day = rd.day and g.query_id = m.id
 where rd.day <= $end_day
 group by m.id)
select query,
       c as total_clicks,
       i as total_impressions,
       coalesce(cast(c as real) / nullif(i, 0), 0) as avg_ctr,
       coalesce(sp / 100.0 / nullif(i, 0), 0) as avg_position,
       days as days_appeared,
       (select count(*) from r) as found
  from r
 order by i desc, query
 limit $limit`;

/**
 * Terms of 3+ characters: the trigram index gives the site's queries holding every trigram of the term ignoring
 * case (Unicode folding, a superset of LIKE's ASCII-only folding; the index keeps no positions, migration 0024),
 * and LIKE then keeps exactly what the plain scan keeps. Queries added since the last indexPendingQueries are
 * not in the FTS index yet: they are the ids past its mark, tested with LIKE directly: a rowid range, usually
 * short or empty (the unary + keeps the planner off the (site_id, query) index, which would read all the site's
 * queries).
 */
const INDEXED_MATCHES = `select q.id, q.query
    from gsc_queries_fts f join gsc_queries q on q.id = f.rowid
   where gsc_queries_fts match $fts and q.site_id = $site_id and q.query like $pattern escape '\\'
  union all
  select q.id, q.query from gsc_queries q
   where q.id > (select indexed_through from gsc_queries_indexed where id = 1)
     and +q.site_id = $site_id and q.query like $pattern escape '\\'
   order by 1`;
export const SEARCH_INDEXED_SQL = totalsOf(INDEXED_MATCHES);

/**
 * Terms of 1-2 characters (too short for trigrams): LIKE over the site's distinct queries, not its rows. The
 * matches in id order make the rollup's key ranges follow its key (neighbouring pages): 2.5-3.3x less CPU
 * than in text order when a term matches many queries (docs/benchmarks/analytics-sizes.md).
 */
const SHORT_MATCHES = `select q.id, q.query from gsc_queries q
   where q.site_id = $site_id and q.query like $pattern escape '\\'
   order by 1`;
export const SEARCH_SHORT_SQL = totalsOf(SHORT_MATCHES);

/** The same two searches for a window holding one search type (windowHasOneType): the days appeared as `count(*)`. */
export const SEARCH_ONE_TYPE_SQL = { index: totalsOf(INDEXED_MATCHES, "count(*)"), short: totalsOf(SHORT_MATCHES, "count(*)") };

/**
 * The same totals for queries matched beforehand (SEARCH_MATCHED_IDS_SQL): their ids as the JSON list $ids (`many`:
 * every type; `one`: a window of one search type).
 */
const LISTED_MATCHES = "select q.id, q.query from json_each($ids) j cross join gsc_queries q on q.id = j.value order by 1";
export const SEARCH_LISTED_SQL = { many: totalsOf(LISTED_MATCHES), one: totalsOf(LISTED_MATCHES, "count(*)") };

/**
 * The ids of a site's queries matching a search, as one JSON array (one value from the query process, not a row per
 * id), whose sums then come from the packed day rows (src/analytics/query-sums.ts readMatchedSums): a 3+ character
 * term's when asked to (tests, bench); a 1-2 character term's are read on the reader (findShortMatchIds).
 */
export const SEARCH_MATCHED_IDS_SQL = `select json_group_array(id) as ids from (${INDEXED_MATCHES})`;

/** Texts of the site's query dictionary per slice of findShortMatchIds (~1-2 ms of LIKE each at load 10-20). */
const MATCH_SLICE = 16_384;

/**
 * The ids of a site's queries whose text is LIKE `pattern` (escape '\\'), ascending: SHORT_MATCHES read on the reader
 * in slices of MATCH_SLICE texts of the (site_id, query) index (a 1-2 character term tests every query of the site:
 * 290,000 at 5 M rows, ~25 ms), the event loop free and the request's budget checked between slices; each slice's ids
 * as one JSON value (190,000 ids for 'ka' as rows cost Bun ~40 ms more).
 */
export async function findShortMatchIds(db: SqliteDb, siteId: number, pattern: string): Promise<Int32Array> {
  const r = db.raw.reader;
  type P = Record<string, string | number>;
  // Each slice ends at the MATCH_SLICE-th text from its start (null: the slice runs to the end of the site's texts).
  const end = (op: ">=" | ">") =>
    r.query<{ q: string }, [P]>(
      `select query as q from gsc_queries where site_id = $site_id and query ${op} $after order by query limit 1 offset ${MATCH_SLICE - 1}`,
    );
  const ids = (op: ">=" | ">", last: boolean) =>
    r.query<{ ids: string }, [P]>(
      `select json_group_array(id) as ids from gsc_queries
        where site_id = $site_id and query ${op} $after${last ? "" : " and query <= $last"} and query like $pattern escape '\\'`,
    );
  const budget = currentBudget();
  const out: number[] = [];
  let after = "";
  for (let op: ">=" | ">" = ">="; ; op = ">") {
    if (op === ">") await new Promise((resolve) => setImmediate(resolve));
    checkBudget(budget);
    const last = end(op).get({ site_id: siteId, after })?.q ?? null;
    const slice = ids(op, last === null).get({ site_id: siteId, after, pattern, ...(last === null ? {} : { last }) })!;
    for (const id of JSON.parse(slice.ids) as number[]) out.push(id);
    if (last === null) break;
    after = last;
  }
  return Int32Array.from(out).sort();
}

/**
 * Whether a site's rows from day `startDay` to `endDay` are all of one search type: the detail's (site_id, day,
 * type) key read at each day with rows (three seeks a day: the next day, its first and its last type).
 */
export function windowHasOneType(db: SqliteDb, siteId: number, startDay: number, endDay: number): boolean {
  const r = db.raw.reader
    .query<{ lo: number | null; hi: number | null }, [number, number, number]>(
      `with recursive d(day) as (
  select (select min(day) from gsc_query_detail where site_id = ?1 and day >= ?2 and day <= ?3)
  union all
  select (select min(day) from gsc_query_detail where site_id = ?1 and day > d.day and day <= ?3) from d where d.day is not null)
select min(lo) as lo, max(hi) as hi from (
  select (select min(type) from gsc_query_detail where site_id = ?1 and day = d.day) as lo,
         (select max(type) from gsc_query_detail where site_id = ?1 and day = d.day) as hi
    from d where d.day is not null)`,
    )
    .get(siteId, startDay, endDay);
  return r?.lo == null || r.lo === r.hi;
}

/**
 * The plain scan of the site's query detail (every row, joined to its query text), without the query index
 * or the rollup: the reference the indexed search is tested against (test/search.index.test.ts) and
 * measured against (bench/query-search.ts).
 */
export const SEARCH_SCAN_SQL = `select q.query,
       sum(d.clicks) as total_clicks,
       sum(d.impressions) as total_impressions,
       coalesce(cast(sum(d.clicks) as real) / nullif(sum(d.impressions), 0), 0) as avg_ctr,
       coalesce(sum(d.sum_position) / 100.0 / nullif(sum(d.impressions), 0), 0) as avg_position,
       count(distinct d.day) as days_appeared,
       count(*) over () as found
  from gsc_query_detail d join gsc_queries q on q.id = d.query_id
 where d.site_id = $site_id and q.query like $pattern escape '\\' and d.day >= $start_day and d.day <= $end_day
 group by q.id
 order by total_impressions desc, q.query
 limit $limit`;

/** The search SQL's named parameters: the dates as day numbers ($start_day, $end_day; no start = day 0). */
export function searchSqlParams(params: SearchParams) {
  const { start, end, ...rest } = params;
  return { ...rest, start_day: start ? dayNumber(start) : 0, end_day: dayNumber(end) };
}

/**
 * An FTS5 query for the rows holding every trigram of `term` (3+ characters), each a quoted literal whatever
 * characters it holds. The index has no positions (detail=none), so a phrase cannot be asked: the trigrams
 * anywhere in a query are a superset of the queries containing the term, which LIKE then narrows.
 */
export function ftsTrigrams(term: string): string {
  const chars = [...term];
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= chars.length; i++)
    grams.add(
      `"${chars
        .slice(i, i + 3)
        .join("")
        .replaceAll('"', '""')}"`,
    );
  return [...grams].join(" AND ");
}

/** Runs one search on the reader connection: the FTS index, the short-term list, or the plain scan. */
export function searchSqlite(db: SqliteDb, kind: "index" | "short" | "scan", params: SearchParams, term: string): SearchRow[] {
  // No cache of our own: bun:sqlite's query() compiles a statement once per connection and SQL text.
  const reader = db.raw.reader;
  const p = searchSqlParams(params);
  type P = typeof p;
  if (kind === "scan") return reader.query<SearchRow, [P]>(SEARCH_SCAN_SQL).all(p);
  if (kind === "short") return reader.query<SearchRow, [P]>(SEARCH_SHORT_SQL).all(p);
  return reader.query<SearchRow, [P & { fts: string }]>(SEARCH_INDEXED_SQL).all({ ...p, fts: ftsTrigrams(term) });
}

/** Queries indexed per write: ~10 ms of FTS work, so other writers do not wait long for the lock. */
export const INDEX_BATCH = 2000;

/**
 * Inside a write: adds up to `limit` queries not yet in the FTS index (the oldest first) and moves the
 * mark past them; returns how many. Batches cost a fraction of per-row FTS writes (BENCHMARKS.md).
 */
export function indexPendingQueries(tx: Orm, limit = INDEX_BATCH): number {
  const mark = tx
    .select({ through: gscQueriesIndexed.indexed_through })
    .from(gscQueriesIndexed)
    .where(eq(gscQueriesIndexed.id, 1))
    .get()!.through;
  const next = tx
    .select({ id: gscQueries.id })
    .from(gscQueries)
    .where(gt(gscQueries.id, mark))
    .orderBy(gscQueries.id)
    .limit(limit)
    .as("next");
  const batch = tx
    .select({ n: count(), last: max(next.id) })
    .from(next)
    .get()!;
  if (batch.last === null) return 0;
  // FTS5's own insert: Drizzle cannot describe the virtual table.
  tx.run(sql`insert into gsc_queries_fts (rowid, query) select id, query from gsc_queries where id > ${mark} and id <= ${batch.last}`);
  tx.update(gscQueriesIndexed).set({ indexed_through: batch.last }).where(eq(gscQueriesIndexed.id, 1)).run();
  return batch.n;
}

/** The oldest and newest day with rows for a site: two seeks of the query detail's primary key. */
export function findDataBoundsSqlite(db: SqliteDb, siteId: number): { oldest: string | null; latest: string | null } {
  // Two subqueries: min() and max() in one select would scan the site's rows instead of seeking.
  const r = db.raw.reader
    .query<{ oldest: number | null; latest: number | null }, [number]>(
      `select (select min(day) from gsc_query_detail where site_id = ?1) as oldest,
              (select max(day) from gsc_query_detail where site_id = ?1) as latest`,
    )
    .get(siteId)!;
  return { oldest: r.oldest === null ? null : dayDate(r.oldest), latest: r.latest === null ? null : dayDate(r.latest) };
}
