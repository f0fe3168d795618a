-- Issue 18 (bytes per row): the day × query rollup clustered by query, (site_id, query_id, day, type), WITHOUT
-- ROWID, and its covering by-query index gsc_day_query_totals_site_query_idx dropped: the rows were stored twice,
-- once ordered by day (the key) and once by query (the index). Query search and the ranking data of exact queries
-- read one key range per query as they read the index before; reads of every query over a day range read the
-- detail or a coarser rollup. Measured after VACUUM on 1 M anchors-shaped rows at 50,000 a day
-- (docs/benchmarks/analytics-sizes.md): 62.6 -> 53.2 bytes per detail row. Rows are copied in the new key's order
-- (the old index's order, then type); the migrator runs it in one transaction, so a database is either moved or
-- left as it was. drizzle-kit cannot say WITHOUT ROWID: a later drizzle-kit rebuild of this table must keep it by hand.
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
  SELECT `site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position` FROM `gsc_day_query_totals`
   ORDER BY `site_id`, `query_id`, `day`, `type`;
--> statement-breakpoint
DROP TABLE `gsc_day_query_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_day_query_totals` RENAME TO `gsc_day_query_totals`;
