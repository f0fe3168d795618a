-- Issue 18: the day × query rollup keyed by query (site_id, query_id, day, type), as on SQLite (migration 0028),
-- and its covering by-query index dropped (the key's index now serves query search and exact-query reads, with heap
-- fetches instead of index-only scans). In the migrator's one transaction.
DROP INDEX "gsc_day_query_totals_site_query_idx";--> statement-breakpoint
ALTER TABLE "gsc_day_query_totals" DROP CONSTRAINT "gsc_day_query_totals_site_id_day_type_query_id_pk";--> statement-breakpoint
ALTER TABLE "gsc_day_query_totals" ADD CONSTRAINT "gsc_day_query_totals_site_id_query_id_day_type_pk" PRIMARY KEY("site_id","query_id","day","type");
