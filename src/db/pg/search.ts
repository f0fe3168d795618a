import type { Db } from "../index.ts";
import type { SearchParams, SearchRow } from "../sqlite/search.ts";
import { dayDate, dayNumber } from "../../sync/grains.ts";
import { pgAll } from "./named.ts";
import { sumPositionScale } from "../enums.ts";

// Query search on PostgreSQL: the pg_trgm GIN index on gsc_queries.query (migrations/pg/0002, see
// search-index.ts) finds a site's distinct queries containing a term of 3+ characters; their rows are
// then totalled through the covering (site_id, query, date, ...) index, as on SQLite. No batching, no
// mark: the trigram index is current at every commit.
//
// Same answers as SQLite's LIKE: ASCII letters fold, nothing else does. ILIKE folds by its collation: the
// database's (more than ASCII in a UTF-8 locale) narrows through the index, and ILIKE under COLLATE "C" (which
// lower-cases ASCII letters only, whatever the database's locale) decides: ~20 ms less backend CPU than
// translate() and LIKE on the 7,700 candidates of 'renka' at 5 M rows. Ties are ordered by byte order (COLLATE "C",
// SQLite's BINARY) whatever the database's collation.

/** SQLite LIKE's case rule on `col`: ASCII letters fold, nothing else. */
const likeAscii = (col: string) => `(${col} collate "C") ilike $pattern escape '\\'`;

// Each matched query's totals from its own range of the day × query rollup's primary key (site_id,
// query_id, day, type; migration 0022): a LATERAL subquery, so the plan is this loop whatever the statistics say (on a table
// filled since the last ANALYZE the planner otherwise rescanned gsc_queries once per row). Days are numbers.
const totals = (matched: string) => `select m.query, t.total_clicks, t.total_impressions, t.avg_ctr, t.avg_position, t.days_appeared,
       (count(*) over ())::int as found
  from (${matched}) m
 cross join lateral (
   select sum(g.clicks)::float8 as total_clicks,
          sum(g.impressions)::float8 as total_impressions,
          coalesce(sum(g.clicks)::float8 / nullif(sum(g.impressions), 0), 0) as avg_ctr,
          coalesce(sum(g.sum_position)::float8 / 100 / nullif(sum(g.impressions), 0), 0) as avg_position,
          count(distinct g.day)::int as days_appeared
     from gsc_day_query_totals g
    where g.site_id = $site_id and g.query_id = m.id and g.day >= $start_day and g.day <= $end_day
 ) t
 where t.days_appeared > 0
 order by t.total_impressions desc, m.query collate "C"
 limit $limit`;

/** Terms of 3+ characters: the trigram index (ILIKE), then the exact ASCII-only rule. */
const INDEXED_MATCHES = `select q.id, q.query from gsc_queries q
   where q.site_id = $site_id and q.query ilike $pattern escape '\\' and ${likeAscii("q.query")}`;
export const PG_SEARCH_INDEXED_SQL = totals(INDEXED_MATCHES);

/**
 * PG_SEARCH_INDEXED_SQL over the matches whose id % 2 is `$parity` only: a search read by two statements at once (two
 * backends, as SQLite's two query processes), each its half's first `$limit` and `found`.
 */
export const PG_SEARCH_INDEXED_HALF_SQL = totals(`${INDEXED_MATCHES} and q.id % 2 = $parity`);

/** PG_SEARCH_INDEXED_SQL over matches already found (`$ids`, an int[] literal: findIndexedMatchIdsPg), not matched again. */
export const PG_SEARCH_LISTED_SQL = totals("select q.id, q.query from gsc_queries q where q.id = any(cast($ids as int[]))");

/** Terms of 1-2 characters (no trigram): the site's distinct queries, by the (site_id, query) index. */
export const PG_SEARCH_SHORT_SQL = totals(`select q.id, q.query from gsc_queries q
   where q.site_id = $site_id and ${likeAscii("q.query")}`);

/**
 * The ids of a site's queries matching a 1-2 character term (the same rule as PG_SEARCH_SHORT_SQL's), ascending, as one
 * text value (190,000 ids for 'ka' at 5 M rows: one value, not a row each); their sums then come from the packed day
 * rows (src/search/queries.ts), not from one key range of the rollup per match.
 */
export async function findShortMatchIdsPg(db: Db, siteId: number, pattern: string): Promise<Int32Array> {
  // LIKE's ASCII-only folding as the pattern's case variants (4 at most for 2 letters; a backslash escapes only
  // %, _ and itself, never a letter): plain LIKEs, ~8x less CPU than translate() on every text (2.4 s -> 0.3 s
  // over 290,000 queries at load 24).
  let variants = [""];
  for (const ch of pattern.replace(/[A-Z]/g, (c) => c.toLowerCase()))
    variants = /[a-z]/.test(ch) ? variants.flatMap((v) => [v + ch, v + ch.toUpperCase()]) : variants.map((v) => v + ch);
  // Unordered: ordered by id, the server sorted the matches (an external sort at work_mem 4 MB: 188,000 ids for 'ka' at
  // 20 M rows, about as much backend CPU as the scan and the list together); sorted here instead.
  const rows = await pgAll<{ ids: string | null }>(
    db,
    "select string_agg(q.id::text, ',') as ids from gsc_queries q where q.site_id = $site_id and q.query like any ($variants::text[])",
    { site_id: siteId, variants },
  );
  const ids = rows[0]?.ids;
  return ids ? idList(ids).sort() : new Int32Array(0);
}

/**
 * The ids of a site's queries matching a 3+ character term (PG_SEARCH_INDEXED_SQL's rule: the trigram index, then the
 * ASCII-only case rule), ascending, as one text value; their sums then come from the packed day rows, as a short term's.
 */
export async function findIndexedMatchIdsPg(db: Db, siteId: number, pattern: string): Promise<Int32Array> {
  const rows = await pgAll<{ ids: string | null }>(
    db,
    `select string_agg(q.id::text, ',') as ids from gsc_queries q
   where q.site_id = $site_id and q.query ilike $pattern escape '\\' and ${likeAscii("q.query")}`,
    { site_id: siteId, pattern },
  );
  const ids = rows[0]?.ids;
  return ids ? idList(ids).sort() : new Int32Array(0);
}

/** A comma-separated list of non-negative integers as their values, without a string per value. */
export function idList(text: string): Int32Array {
  let n = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 44) n++;
  const out = new Int32Array(n);
  let k = 0;
  let v = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 44) {
      out[k++] = v;
      v = 0;
    } else v = v * 10 + (c - 48);
  }
  out[k] = v;
  return out;
}

/** The plain scan of the site's query detail (joined to its query text), without the rollup: the reference for tests and the bench. */
export const PG_SEARCH_SCAN_SQL = `select q.query,
       sum(d.clicks)::float8 as total_clicks,
       sum(d.impressions)::float8 as total_impressions,
       coalesce(sum(d.clicks)::float8 / nullif(sum(d.impressions), 0), 0) as avg_ctr,
       coalesce(sum(d.sum_position)::float8 / 100 / nullif(sum(d.impressions), 0), 0) as avg_position,
       count(distinct d.day)::int as days_appeared,
       (count(*) over ())::int as found
  from gsc_query_detail d join gsc_queries q on q.id = d.query_id
 where d.site_id = $site_id and ${likeAscii("q.query")} and d.day >= $start_day and d.day <= $end_day
 group by q.id, q.query
 order by total_impressions desc, q.query collate "C"
 limit $limit`;

const sqlOf = {
  index: PG_SEARCH_INDEXED_SQL,
  half: PG_SEARCH_INDEXED_HALF_SQL,
  listed: PG_SEARCH_LISTED_SQL,
  short: PG_SEARCH_SHORT_SQL,
  scan: PG_SEARCH_SCAN_SQL,
};

/**
 * Runs one search: the trigram index (`half`: its matches of one id parity, `parity`), the short-term list, or the
 * plain scan. At most `limit` rows (the API's at most 1,000): read whole, in one round trip.
 */
export function searchPg(db: Db, kind: keyof typeof sqlOf, params: SearchParams, parity?: number, ids?: Int32Array): Promise<SearchRow[]> {
  const { start, end, ...rest } = params;
  return pgAll<SearchRow>(
    db,
    sqlOf[kind],
    {
      ...rest,
      start_day: start ? dayNumber(start) : 0,
      end_day: dayNumber(end),
      ...(kind === "half" ? { parity: parity! } : {}),
      ...(kind === "listed" ? { ids: `{${ids!.join(",")}}` } : {}),
    },
    { small: params.limit >= 0 && params.limit <= 1000 },
  );
}

/** The oldest and newest day with rows for a site (PostgreSQL answers min and max of one select from the index). */
export async function findDataBoundsPg(db: Db, siteId: number): Promise<{ oldest: string | null; latest: string | null }> {
  const rows = await pgAll<{ oldest: number | null; latest: number | null }>(
    db,
    "select min(day) as oldest, max(day) as latest from gsc_query_detail where site_id = $site_id",
    { site_id: siteId },
  );
  const r = rows[0];
  return { oldest: r?.oldest == null ? null : dayDate(r.oldest), latest: r?.latest == null ? null : dayDate(r.latest) };
}

/** What MCP search_keywords reads (src/mcp/queries.ts): a site's queries matching a LIKE pattern, from day `since`, of one type or all. */
export type KeywordSearch = { siteId: number; since: number; type: number | null; pattern: string; limit: number };

/** A user's LIKE pattern (no escape character) with ASCII letters folded, as SQLite's LIKE: see likeAsciiInsensitive. */
const likeUserPattern = `m.query ilike $pattern escape '' and (m.query collate "C") ilike $pattern escape ''`;
const keywordsSql = (typed: boolean) => `select m.query as query, t.total_clicks, t.total_impressions, t.avg_position
  from gsc_queries m
 cross join lateral (
   select coalesce(sum(g.clicks), 0) as total_clicks,
          coalesce(sum(g.impressions), 0) as total_impressions,
          coalesce(cast(sum(g.sum_position) as double precision) / nullif(sum(g.impressions), 0) / ${sumPositionScale}, 0) as avg_position,
          count(*) as n
     from gsc_day_query_totals g
    where g.site_id = $site_id and g.query_id = m.id and g.day >= $since${typed ? " and g.type = $type" : ""}
 ) t
 where m.site_id = $site_id and ${likeUserPattern} and t.n > 0
 order by t.total_impressions desc, m.query
 limit $limit`;
const KEYWORDS_SQL = { typed: keywordsSql(true), all: keywordsSql(false) };

/**
 * MCP search_keywords on PostgreSQL: each matching query's sums from its own range of the day × query rollup's key (a
 * LATERAL subquery, as the search's), beside the match's text. The grouped form (the rollup's rows of the matching ids,
 * grouped by id, joined to their texts) sorted the matches' rows by id: '%renka%' over 90 days at 20 M, 182,581 rows of
 * 6,706 matches, an external sort at work_mem 4 MB (the planner counted 93 rows), then a text lookup per match.
 */
export async function searchKeywordsPg(
  db: Db,
  o: KeywordSearch,
): Promise<{ query: string; total_clicks: number; total_impressions: number; avg_position: number }[]> {
  type Row = { query: string; total_clicks: string | number; total_impressions: string | number; avg_position: number };
  const rows = await pgAll<Row>(
    db,
    o.type === null ? KEYWORDS_SQL.all : KEYWORDS_SQL.typed,
    { site_id: o.siteId, since: o.since, pattern: o.pattern, limit: o.limit, ...(o.type === null ? {} : { type: o.type }) },
    { small: o.limit >= 0 && o.limit <= 1000 },
  );
  return rows.map((r) => ({
    query: r.query,
    total_clicks: Number(r.total_clicks),
    total_impressions: Number(r.total_impressions),
    avg_position: Number(r.avg_position),
  }));
}
