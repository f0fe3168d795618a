-- Issue 18: the day × query rollup keyed by query (site_id, query_id, day, type) as on SQLite (0028 there), its
-- covering index dropped. A heap table: the day's writes and reads keep an index on (site_id, day, type, query_id),
-- made here only (not in src/db/pg/schema.ts: it is no key, and schema-drift compares keys).
DROP INDEX "gsc_day_query_totals_site_query_idx";--> statement-breakpoint
ALTER TABLE "gsc_day_query_totals" DROP CONSTRAINT "gsc_day_query_totals_site_id_day_type_query_id_pk";--> statement-breakpoint
ALTER TABLE "gsc_day_query_totals" ADD CONSTRAINT "gsc_day_query_totals_site_id_query_id_day_type_pk" PRIMARY KEY("site_id","query_id","day","type");--> statement-breakpoint
CREATE INDEX "gsc_day_query_totals_site_day_idx" ON "gsc_day_query_totals" ("site_id","day","type","query_id");
