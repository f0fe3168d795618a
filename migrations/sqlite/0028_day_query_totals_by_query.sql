-- Issue 18: the day × query rollup keyed by query (site_id, query_id, day, type), still WITHOUT ROWID, and its
-- covering index on (site_id, query_id, day, ...) dropped: the table is that index now. Measured on the 5 M-row
-- anchors bench database: 66.6 -> 54.6 bytes per detail row (docs/benchmarks/analytics-sizes.md). A day's rows
-- are found through the day's query ids in the detail (src/sync/data.ts, staged-day.ts). Rebuilt in the
-- migration's transaction (all or nothing), copied in the new key's order.
-- drizzle-kit cannot say WITHOUT ROWID: a later drizzle-kit rebuild of this table must keep it by hand.
CREATE TABLE `__new_gsc_day_query_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `query_id`, `day`, `type`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_day_query_totals` (`site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position`)
SELECT `site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position`
  FROM `gsc_day_query_totals` ORDER BY `site_id`, `query_id`, `day`, `type`;
--> statement-breakpoint
DROP TABLE `gsc_day_query_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_day_query_totals` RENAME TO `gsc_day_query_totals`;
