-- Issue 18: query totals per week (the day x query rollup summed per week floor(day / 7)), kept at ingest with the
-- day's rollup (src/sync/rollups.ts), filled here from the rollup already stored, in the migration's transaction.
CREATE TABLE "gsc_week_query_totals" (
	"site_id" integer NOT NULL,
	"week" integer NOT NULL,
	"type" integer NOT NULL,
	"query_id" integer NOT NULL,
	"clicks" bigint NOT NULL,
	"impressions" bigint NOT NULL,
	"sum_position" bigint NOT NULL,
	CONSTRAINT "gsc_week_query_totals_site_id_week_type_query_id_pk" PRIMARY KEY("site_id","week","type","query_id")
);
--> statement-breakpoint
ALTER TABLE "gsc_week_query_totals" ADD CONSTRAINT "gsc_week_query_totals_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE cascade ON UPDATE no action;
--> statement-breakpoint
INSERT INTO gsc_week_query_totals (site_id, week, type, query_id, clicks, impressions, sum_position)
SELECT site_id, day / 7, type, query_id, sum(clicks), sum(impressions), sum(sum_position)
  FROM gsc_day_query_totals GROUP BY site_id, day / 7, type, query_id;
