CREATE TABLE "gsc_day_query_counts" (
	"site_id" integer NOT NULL,
	"day" integer NOT NULL,
	"type" integer NOT NULL,
	"device" integer NOT NULL,
	"queries" integer NOT NULL,
	CONSTRAINT "gsc_day_query_counts_site_id_day_type_device_pk" PRIMARY KEY("site_id","day","type","device")
);
--> statement-breakpoint
ALTER TABLE "gsc_day_query_counts" ADD CONSTRAINT "gsc_day_query_counts_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE cascade ON UPDATE no action;