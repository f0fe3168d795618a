-- Issue 18: named queries per (site, day, type, device), kept at ingest by src/sync/rollups.ts (type 0 = every type,
-- device 0 = every device). WITHOUT ROWID (drizzle-kit cannot say it: keep it by hand in a rebuild).
CREATE TABLE `gsc_day_query_counts` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`device` integer NOT NULL,
	`queries` integer NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `device`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
