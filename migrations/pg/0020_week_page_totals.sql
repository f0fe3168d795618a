-- Issue 18: page totals per week (all countries and devices), kept at ingest by replaceDayGrains (src/sync/rollups.ts).
CREATE TABLE "gsc_week_page_totals" (
	"site_id" integer NOT NULL,
	"week" integer NOT NULL,
	"type" integer NOT NULL,
	"page_id" integer NOT NULL,
	"clicks" bigint NOT NULL,
	"impressions" bigint NOT NULL,
	"sum_position" bigint NOT NULL,
	CONSTRAINT "gsc_week_page_totals_site_id_week_type_page_id_pk" PRIMARY KEY("site_id","week","type","page_id")
);
--> statement-breakpoint
ALTER TABLE "gsc_week_page_totals" ADD CONSTRAINT "gsc_week_page_totals_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE cascade ON UPDATE no action;