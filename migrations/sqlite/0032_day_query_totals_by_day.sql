-- Issue 18: the day × query rollup keyed by day (site_id, type, day, query_id), still WITHOUT ROWID. Keyed by query
-- (0028), every synced day put one row into every query's key range and dirtied nearly every page of the site's
-- rollup (in process, 50,000 rows a day: 716 WAL pages a day with 1 day stored, 37,544 with 160); keyed by day, a
-- day's rows are one new key range. Rebuilt in the migration's transaction (all or nothing), copied in the new key's
-- order. The triggers that keep gsc_query_last_days (0029) go with the old table: made again, the delete trigger
-- finding a query's newest day by a seek per stored day (its rows are no longer one key range).
-- drizzle-kit cannot say WITHOUT ROWID: a later drizzle-kit rebuild of this table must keep it by hand.
CREATE TABLE `__new_gsc_day_query_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `type`, `day`, `query_id`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_day_query_totals` (`site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position`)
SELECT `site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position`
  FROM `gsc_day_query_totals` ORDER BY `site_id`, `type`, `day`, `query_id`;
--> statement-breakpoint
DROP TABLE `gsc_day_query_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_day_query_totals` RENAME TO `gsc_day_query_totals`;
--> statement-breakpoint
-- As 0029: a rollup row added makes its day the query's newest when it is newer. Rollup updates change sums only.
CREATE TRIGGER `gsc_day_query_totals_last_day_insert` AFTER INSERT ON `gsc_day_query_totals` BEGIN
  INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`) VALUES (new.`site_id`, new.`type`, new.`query_id`, new.`day`)
    ON CONFLICT (`site_id`, `type`, `query_id`) DO UPDATE SET `day` = excluded.`day` WHERE excluded.`day` > `gsc_query_last_days`.`day`;
END;
--> statement-breakpoint
-- A rollup row deleted on the query's newest day: its newest day found again, or it goes. The stored days of the type
-- before the deleted one, newest first (a seek each on the key's (site_id, type, day) prefix), until one has the query
-- (a seek each): a re-synced day that lost a query walks back to that query's previous day. A site's purge deletes its
-- rows in key order: at a query's newest day no earlier day is left, one seek.
CREATE TRIGGER `gsc_day_query_totals_last_day_delete` AFTER DELETE ON `gsc_day_query_totals`
WHEN old.`day` = (SELECT `day` FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`) BEGIN
  DELETE FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`;
  INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`)
  WITH RECURSIVE `d`(`day`) AS (
    SELECT (SELECT max(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` < old.`day`)
    UNION ALL
    SELECT (SELECT max(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` < `d`.`day`)
      FROM `d`
     WHERE `d`.`day` IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`)
  )
  SELECT old.`site_id`, old.`type`, old.`query_id`, `day` FROM `d`
   WHERE `day` IS NOT NULL AND EXISTS (
     SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`);
END;
