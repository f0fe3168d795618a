-- Issue 18: query totals per week (the day x query rollup summed per week floor(day / 7)), kept at ingest with the
-- day's rollup (src/sync/rollups.ts), filled here from the rollup already stored, in the migration's transaction.
-- WITHOUT ROWID (drizzle-kit cannot say it: keep it by hand in a rebuild).
CREATE TABLE `gsc_week_query_totals` (
	`site_id` integer NOT NULL,
	`week` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`clicks` integer NOT NULL,
	`impressions` integer NOT NULL,
	`sum_position` integer NOT NULL,
	PRIMARY KEY(`site_id`, `week`, `type`, `query_id`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO gsc_week_query_totals (site_id, week, type, query_id, clicks, impressions, sum_position)
SELECT site_id, day / 7, type, query_id, sum(clicks), sum(impressions), sum(sum_position)
  FROM gsc_day_query_totals GROUP BY site_id, day / 7, type, query_id;
