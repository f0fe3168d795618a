// Query search on PostgreSQL: what the search queries need to know about the schema (built by
// migrations/pg/0002_query_search_triggers.sql and 0003_query_search_trgm_index.sql).
//
// - gsc_queries is each site's query dictionary (the compact query detail holds its ids; written by the sync,
//   src/sync/data.ts; a query stays when its rows go). A search matches the site's queries, then totals their
//   days through the rollup's primary key (site_id, query_id, day, type).
// - The substring index is a pg_trgm GIN index on gsc_queries.query. It serves `query LIKE '%term%'` and
//   `query ILIKE '%term%'` (pg_trgm lower-cases its trigrams, so one index serves both) for terms of 3 or more
//   characters, with no batching and no lag: there is no FTS table and no gsc_queries_indexed mark to consult.
//   Shorter terms give no trigram: match them over the site's rows of gsc_queries (index on site_id, query).
// - Case: SQLite's LIKE folds ASCII letters only. ILIKE folds by the database's locale (the C locale folds
//   ASCII only, like SQLite; a UTF-8 locale folds other letters too); `lower(query) like lower($1)` or ILIKE on
//   a C-locale database gives SQLite's results. LIKE's escape character is backslash by default on PostgreSQL,
//   so SQLite's containsPattern() (src/search/queries.ts) escaping works as it is (say `escape '\'` anyway).

/** Names of the PostgreSQL query-search index, for the search queries and the tests. */
export const pgQuerySearch = {
  extension: "pg_trgm",
  table: "gsc_queries",
  column: "query",
  index: "gsc_queries_query_trgm_idx",
  operatorClass: "gin_trgm_ops",
  /** Terms shorter than this have no trigram: the index cannot narrow them. */
  minIndexedChars: 3,
} as const;
