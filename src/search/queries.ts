import type { Db, Orm, SqliteDb } from "../db/index.ts";
import { findDataBoundsPg, findIndexedMatchIdsPg, findShortMatchIdsPg, searchPg } from "../db/pg/search.ts";
import {
  findDataBoundsSqlite,
  ftsTrigrams,
  INDEX_BATCH,
  indexPendingQueries,
  SEARCH_INDEXED_SQL,
  SEARCH_LISTED_SQL,
  SEARCH_MATCHED_IDS_SQL,
  findShortMatchIds,
  SEARCH_ONE_TYPE_SQL,
  SEARCH_SCAN_SQL,
  SEARCH_SHORT_SQL,
  searchSqlParams,
  type SearchParams,
  type SearchRow,
  windowHasOneType,
} from "../db/sqlite/search.ts";
import { queryPool } from "../analytics/pool.ts";
import { amongHighest, byText, checkAnswerRows, queryTexts, readMatchedSums } from "../analytics/query-sums.ts";
import { CONTROL_CHARACTERS, containsPattern } from "../db/sql.ts";
import { sumPositionScale } from "../db/enums.ts";
import { ApiError } from "../errors.ts";
import { dayOf } from "../sync/dates.ts";
import { dayNumber } from "../sync/grains.ts";
import type { QueryStats } from "./schemas.ts";

export { INDEX_BATCH, indexPendingQueries } from "../db/sqlite/search.ts";

// Query search, on either engine: an index of each site's distinct queries (gsc_queries, kept by
// triggers) narrows a term to the queries containing it, whose rows are then totalled through the
// covering index. SQLite: FTS5 trigram (src/db/sqlite/search.ts); PostgreSQL: pg_trgm (src/db/pg/search.ts).

/** The trigram index finds substrings of at least this many characters; shorter terms scan the site's query list. */
export const MIN_INDEXED_CHARS = 3;

export type SearchOptions = { siteId: number; term: string; startDate: string | null; endDate: string | null; limit: number };

/**
 * Queries of a site containing `term` (case-insensitive for ASCII, as SQLite's LIKE), with their
 * clicks and impressions summed, ctr and position averaged, and the days they appeared, between two
 * optional days, most impressions first. `total` counts every matching query, before the limit.
 * `using`: "scan" runs the plain scan instead of the index; "rollup" or "packed" (SQLite) takes the matches' sums from
 * there whatever the term's length (same results; for tests and the bench). PostgreSQL takes a 1-2 character term's from
 * the packed day rows too ("rollup": from the rollup's key ranges, its statement before).
 */
export async function searchQueries(
  db: Db,
  opts: SearchOptions & { using?: "index" | "scan" | "rollup" | "packed" },
): Promise<{ total: number; queries: QueryStats[] }> {
  // The API's schema refuses these first; this guards every other caller (the dashboard, tools).
  if (CONTROL_CHARACTERS.test(opts.term)) {
    throw new ApiError("validation_failed", "invalid query: search_term: must not contain control characters (such as NUL, %00)", [
      { path: "search_term", message: "must not contain control characters (such as NUL, %00)" },
    ]);
  }
  const params: SearchParams = {
    site_id: opts.siteId,
    pattern: containsPattern(opts.term),
    start: opts.startDate ?? "",
    end: opts.endDate ?? "9999-12-31",
    limit: opts.limit,
  };
  const kind = opts.using === "scan" ? "scan" : [...opts.term].length < MIN_INDEXED_CHARS ? "short" : "index";
  const rows =
    db.engine === "pg"
      ? kind === "short" && opts.using !== "rollup"
        ? await packedSearch(db, params, await findShortMatchIdsPg(db, params.site_id, params.pattern))
        : kind === "index" && !opts.using
          ? await searchIndexedPg(db, params)
          : await searchPg(db, kind, params)
      : kind === "scan"
        ? await queryPool(db).all<SearchRow>(SEARCH_SCAN_SQL, searchSqlParams(params))
        : await searchSqlite(db, kind, params, opts.term, opts.using === "rollup" || opts.using === "packed" ? opts.using : null);
  return { total: rows[0]?.found ?? 0, queries: rows.map(({ found: _found, ...q }) => q) };
}

/**
 * A SQLite search. A 3+ character term's matches (the trigram index; 6,700 at 5 M rows for bench:analytics' term) are
 * found in a query process; up to SEEK_MATCHES of them are totalled from the rollup there (a seek per query and stored
 * day: the rollup is keyed by day), ordered in SQL (totalsOf). More, and a 1-2 character term's (190,000 of 290,000
 * queries), from the packed day rows, on the reader a slice at a time: the ids matching (findShortMatchIds), the
 * window's days decoded (readMatchedSums: its entries, however few ids; flat with the history), the first `limit` by
 * impressions and query text picked in JS as the SQL orders them. A window of one search type counts the days
 * appeared without a distinct set (windowHasOneType). `force`: that path whatever the term (tests, bench).
 */
async function searchSqlite(
  db: SqliteDb,
  kind: "index" | "short",
  params: SearchParams,
  term: string,
  force: "rollup" | "packed" | null,
): Promise<SearchRow[]> {
  const p = searchSqlParams(params);
  const pool = queryPool(db);
  const fts: Record<string, string> = kind === "index" ? { fts: ftsTrigrams(term) } : {};
  const rollup = () => {
    const oneType = windowHasOneType(db, p.site_id, p.start_day, p.end_day);
    const sql = oneType ? SEARCH_ONE_TYPE_SQL[kind] : kind === "short" ? SEARCH_SHORT_SQL : SEARCH_INDEXED_SQL;
    return pool.all<SearchRow>(sql, { ...p, ...fts });
  };
  if (force === "rollup") return rollup();
  const ids =
    kind === "short"
      ? await findShortMatchIds(db, p.site_id, p.pattern)
      : Int32Array.from(
          JSON.parse(
            (await pool.all<{ ids: string }>(SEARCH_MATCHED_IDS_SQL, { site_id: p.site_id, pattern: p.pattern, ...fts }))[0]?.ids ?? "[]",
          ) as number[],
        ).sort();
  if (!force && kind === "index" && ids.length <= SEEK_MATCHES) {
    const sql = windowHasOneType(db, p.site_id, p.start_day, p.end_day) ? SEARCH_LISTED_SQL.one : SEARCH_LISTED_SQL.many;
    const { pattern: _pattern, ...rest } = p;
    return pool.all<SearchRow>(sql, { ...rest, ids: JSON.stringify(Array.from(ids)) });
  }
  return packedSearch(db, params, ids);
}

/**
 * Matches up to which SQLite totals a search from the rollup's rows (a seek per query and stored day: ~90 a query over
 * 90 days) rather than from the packed day rows (every entry of the window's days decoded: ~3 M at 5 M rows, 90 days).
 */
const SEEK_MATCHES = 200;

/**
 * Windows of up to this many days on which PostgreSQL reads a 3+ character term's matches first, to total them from the
 * packed day rows when they are more than PG_PACKED_MATCHES_PER_DAY a day (every entry of the window's days decoded
 * here, ~1.6 ms of CPU a day at 50,000 rows a day, against ~11 µs of backend a match for its key range of the rollup).
 * A longer window keeps the rollup without that first read (its ~6-10 ms would be paid by every search, and the packed
 * rows win there only past ~12,000 matches). pg20m, in process, CPU of the service and its backends a search, 20 runs
 * alternated with the tree before (load 6-7): 'renka' (6,707 matches) 30 days 82 -> 48 ms (p50 80 -> 50 ms), 'renka
 * near' (833) 30 days 24 -> 25; 'near me' (41,540) 30 days 345 -> 85.
 */
const PG_PACKED_DAYS = 31;
const PG_PACKED_MATCHES_PER_DAY = 150;

/**
 * A PostgreSQL search of a 3+ character term. A window of up to PG_PACKED_DAYS: the matches' ids by the trigram index
 * first, then their sums from the packed day rows when they are many (as SQLite does past SEEK_MATCHES), else each
 * match's key range of the rollup for the ids found, half of them by each of two statements at once. A longer window
 * (or one from the first day on): the rollup's key ranges, each statement matching the term itself (byHalves).
 */
async function searchIndexedPg(db: Db, params: SearchParams): Promise<SearchRow[]> {
  const days = params.start ? dayNumber(params.end < "9999" ? params.end : dayOf(new Date())) - dayNumber(params.start) + 1 : null;
  if (days !== null && days <= PG_PACKED_DAYS) {
    const ids = await findIndexedMatchIdsPg(db, params.site_id, params.pattern);
    if (ids.length > PG_PACKED_MATCHES_PER_DAY * Math.max(days, 1)) return packedSearch(db, params, ids);
    return byHalves(params.limit, (parity) =>
      searchPg(
        db,
        "listed",
        params,
        undefined,
        ids.filter((id) => id % 2 === parity),
      ),
    );
  }
  return byHalves(params.limit, (parity) => searchPg(db, "half", params, parity));
}

/**
 * A 3+ character term's search by two statements at once (SQLite: two query processes; PostgreSQL: two backends), the
 * matches of even ids and of odd ones (6,700 rollup key ranges at 5 M rows for bench:analytics' term): each half's
 * first `limit` in the statement's order, whose first `limit` are the first of all, `found` the halves' sum.
 */
async function byHalves(limit: number, half: (parity: number) => Promise<SearchRow[]>): Promise<SearchRow[]> {
  const halves = await Promise.all([0, 1].map(half));
  const found = halves.reduce((n, rows) => n + (rows[0]?.found ?? 0), 0);
  const rows = halves.flat().sort((a, b) => b.total_impressions - a.total_impressions || byText(a.query, b.query));
  return (limit < 0 ? rows : rows.slice(0, limit)).map((r) => ({ ...r, found }));
}

/**
 * A search's answer for the matches `ids` (ascending) from the packed day rows (readMatchedSums), the first `limit` by
 * impressions and query text picked in JS as the SQL orders them: 1-2 character terms on either engine.
 */
async function packedSearch(db: Db, params: SearchParams, ids: Int32Array): Promise<SearchRow[]> {
  const p = searchSqlParams(params);
  const sums = await readMatchedSums(db, p.site_id, ids, p.start_day, p.end_day);
  const { clicks: c, impressions: im, sumPosition: sp, days } = sums;
  let found = 0;
  for (let j = 0; j < ids.length; j++) if (days[j]! > 0) found++;
  // The row cap as the statement's answer met it (at most `limit` rows).
  checkAnswerRows(Math.min(found, Math.max(params.limit, 0)));
  const picked = amongHighest(
    ids.length,
    (j) => im[j]!,
    params.limit,
    (j) => days[j]! > 0,
  );
  const texts = await queryTexts(
    db,
    picked.map((j) => ids[j]!),
  );
  return picked
    .map((j) => ({ j, query: texts.get(ids[j]!)! }))
    .sort((a, b) => im[b.j]! - im[a.j]! || byText(a.query, b.query))
    .slice(0, Math.max(params.limit, 0))
    .map(({ j, query }) => ({
      query,
      total_clicks: c[j]!,
      total_impressions: im[j]!,
      avg_ctr: im[j]! === 0 ? 0 : c[j]! / im[j]!,
      avg_position: im[j]! === 0 ? 0 : sp[j]! / sumPositionScale / im[j]!,
      days_appeared: days[j]!,
      found,
    }));
}

/**
 * Indexes every pending query in writes of INDEX_BATCH (the sync calls it after each day it stores).
 * SQLite only: PostgreSQL's trigram index is current at every commit.
 */
export async function indexAllPendingQueries(write: <T>(fn: (tx: Orm) => T) => Promise<T>): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await write((tx) => indexPendingQueries(tx));
    total += n;
    if (n < INDEX_BATCH) return total;
  }
}

/** The oldest and newest day with rows for a site (null when it has none): index seeks. */
export async function findDataBounds(db: Db, siteId: number): Promise<{ oldest: string | null; latest: string | null }> {
  return db.engine === "sqlite" ? findDataBoundsSqlite(db, siteId) : findDataBoundsPg(db, siteId);
}
