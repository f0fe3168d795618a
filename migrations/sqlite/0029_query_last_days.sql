-- Issue 18: each query's newest day in the day × query rollup per search type, kept by triggers on gsc_day_query_totals
-- (every path that writes the rollup: the sync, the copy, a site's deletion). A window ending on or after a type's
-- newest day holds exactly the queries whose newest day is in it: the insight overview counts them here (one row a
-- query, src/insights/queries.ts) instead of the window's rollup rows (one a query and day).
-- WITHOUT ROWID (drizzle-kit cannot say it: keep it by hand in a rebuild). No foreign key (see the schema).
CREATE TABLE `gsc_query_last_days` (
	`site_id` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`day` integer NOT NULL,
	PRIMARY KEY(`site_id`, `type`, `query_id`)
) WITHOUT ROWID;
--> statement-breakpoint
-- The rollup already stored (in the migration's transaction: all or nothing), before the triggers exist.
INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`)
SELECT `site_id`, `type`, `query_id`, max(`day`) FROM `gsc_day_query_totals` GROUP BY `site_id`, `query_id`, `type`;
--> statement-breakpoint
-- A rollup row added: its day becomes the query's newest when it is newer (an older day, as a backfill writes, costs one
-- seek). Rollup updates change sums only, never the key.
CREATE TRIGGER `gsc_day_query_totals_last_day_insert` AFTER INSERT ON `gsc_day_query_totals` BEGIN
  INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`) VALUES (new.`site_id`, new.`type`, new.`query_id`, new.`day`)
    ON CONFLICT (`site_id`, `type`, `query_id`) DO UPDATE SET `day` = excluded.`day` WHERE excluded.`day` > `gsc_query_last_days`.`day`;
END;
--> statement-breakpoint
-- A rollup row deleted on the query's newest day: its newest day is found again (its rollup rows are one key range), or it goes.
CREATE TRIGGER `gsc_day_query_totals_last_day_delete` AFTER DELETE ON `gsc_day_query_totals`
WHEN old.`day` = (SELECT `day` FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`) BEGIN
  DELETE FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`;
  INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`)
  SELECT old.`site_id`, old.`type`, old.`query_id`, `d` FROM (
    SELECT max(`day`) AS `d` FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `query_id` = old.`query_id` AND `type` = old.`type`
  ) WHERE `d` IS NOT NULL;
END;
