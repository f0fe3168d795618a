import type { Db, Orm, SqliteDb } from "../db/index.ts";
import { findDataBoundsPg, searchPg } from "../db/pg/search.ts";
import {
  findDataBoundsSqlite,
  ftsTrigrams,
  INDEX_BATCH,
  indexPendingQueries,
  SEARCH_INDEXED_SQL,
  SEARCH_ONE_TYPE_SQL,
  SEARCH_SCAN_SQL,
  SEARCH_SHORT_SQL,
  searchSqlParams,
  type SearchParams,
  type SearchRow,
  windowHasOneType,
} from "../db/sqlite/search.ts";
import { queryPool } from "../analytics/pool.ts";
import { CONTROL_CHARACTERS, containsPattern } from "../db/sql.ts";
import { ApiError } from "../errors.ts";
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
 * `using: "scan"` runs the plain scan instead of the index (same results; for tests and the bench).
 */
export async function searchQueries(
  db: Db,
  opts: SearchOptions & { using?: "index" | "scan" },
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
  // SQLite: in a query process (analytics/pool.ts), off the event loop and stopped at the request's time limit:
  // a short term on a big site totals most of its rows.
  const rows = db.engine === "sqlite" ? await searchInPool(db, kind, params, opts.term) : await searchPg(db, kind, params);
  return { total: rows[0]?.found ?? 0, queries: rows.map(({ found: _found, ...q }) => q) };
}

/** A SQLite search in a query process; a window of one search type counts the days appeared without a distinct set (SEARCH_ONE_TYPE_SQL). */
async function searchInPool(db: SqliteDb, kind: "index" | "short" | "scan", params: SearchParams, term: string): Promise<SearchRow[]> {
  const p = searchSqlParams(params);
  if (kind === "scan") return queryPool(db).all<SearchRow>(SEARCH_SCAN_SQL, p);
  const oneType = windowHasOneType(db, params.site_id, p.start_day, p.end_day);
  const sql = oneType ? SEARCH_ONE_TYPE_SQL[kind] : kind === "short" ? SEARCH_SHORT_SQL : SEARCH_INDEXED_SQL;
  return queryPool(db).all<SearchRow>(sql, kind === "index" ? { ...p, fts: ftsTrigrams(term) } : p);
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
