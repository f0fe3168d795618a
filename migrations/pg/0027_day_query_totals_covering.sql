-- Issue 18: the day × query rollup's key carries each row's sums (INCLUDE), so a read of a query's days by the key
-- (query search: one key range per matched query; daily ranking of exact queries; MCP keyword reads) is an index-only
-- scan, not a heap page per (query, day): the rows of one query are spread over the heap by day. SQLite's rollup is
-- WITHOUT ROWID (its key holds the row). Search 'renka' over 30 days at 5 M rows: 130 -> 90 ms of backend CPU.
ALTER TABLE "gsc_day_query_totals" DROP CONSTRAINT "gsc_day_query_totals_site_id_query_id_day_type_pk",
  ADD CONSTRAINT "gsc_day_query_totals_site_id_query_id_day_type_pk" PRIMARY KEY ("site_id","query_id","day","type")
  INCLUDE ("clicks","impressions","sum_position");
