-- Issue 18: page totals per week (all countries and devices), kept at ingest by replaceDayGrains (src/sync/rollups.ts).
-- WITHOUT ROWID (drizzle-kit cannot say it: keep it by hand in a rebuild).
CREATE TABLE `gsc_week_page_totals` (
	`site_id` integer NOT NULL,
	`week` integer NOT NULL,
	`type` integer NOT NULL,
	`page_id` integer NOT NULL,
	`clicks` integer NOT NULL,
	`impressions` integer NOT NULL,
	`sum_position` integer NOT NULL,
	PRIMARY KEY(`site_id`, `week`, `type`, `page_id`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
