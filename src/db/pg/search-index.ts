// Query search on PostgreSQL: what the search queries need to know about the schema (built by
// migrations/pg/0002_query_search_triggers.sql and 0003_query_search_trgm_index.sql).
//
// - gsc_queries holds each site's distinct query strings, kept exactly in step with gsc_performance_data by
//   triggers (insert, delete, change of site or query; concurrent writers included), as SQLite's triggers do.
//   So a search can match the site's distinct queries, then total their rows through the covering index
//   gsc_performance_data_site_query_idx (site_id, query, date, clicks, impressions, ctr, position), as on SQLite.
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
  /** The triggers on gsc_performance_data that keep gsc_queries (same names as SQLite's). */
  triggers: ["gsc_performance_data_queries_delete", "gsc_performance_data_queries_insert", "gsc_performance_data_queries_update"],
} as const;
