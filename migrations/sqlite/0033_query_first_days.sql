-- Issue 18: each query's oldest stored day beside its newest (gsc_query_last_days.first_day). Since 0032 the rollup is
-- keyed by day, so the delete trigger finds a query's previous day by walking the stored days back, a seek or two each:
-- a query whose only day was deleted walked the whole history (9 ms a row at 1,000 stored days: a re-fetched day that
-- lost 1,000 long-tail queries held the write lock 9 s). Now such a query goes at once, and a walk stops at the query's
-- oldest day at the latest; a deleted oldest day is walked forward the same way. A site's deletion removes its rows
-- here first (sites_query_last_days_delete), so its cascade through the rollup walks nothing.
-- Rebuilt in the migration's transaction (all or nothing), WITHOUT ROWID as in 0029; the triggers go first (they name
-- the table) and are made again after.
DROP TRIGGER IF EXISTS `gsc_day_query_totals_last_day_insert`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `gsc_day_query_totals_last_day_delete`;
--> statement-breakpoint
CREATE TABLE `__new_gsc_query_last_days` (
	`site_id` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`day` integer NOT NULL,
	`first_day` integer NOT NULL,
	PRIMARY KEY(`site_id`, `type`, `query_id`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`, `first_day`)
SELECT `site_id`, `type`, `query_id`, max(`day`), min(`day`) FROM `gsc_day_query_totals`
 GROUP BY `site_id`, `type`, `query_id` ORDER BY `site_id`, `type`, `query_id`;
--> statement-breakpoint
DROP TABLE `gsc_query_last_days`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_query_last_days` RENAME TO `gsc_query_last_days`;
--> statement-breakpoint
-- A rollup row added: its day becomes the query's newest when newer, its oldest when older (no write otherwise).
-- Rollup updates change sums only, never the key.
CREATE TRIGGER `gsc_day_query_totals_last_day_insert` AFTER INSERT ON `gsc_day_query_totals` BEGIN
  INSERT INTO `gsc_query_last_days` (`site_id`, `type`, `query_id`, `day`, `first_day`)
  VALUES (new.`site_id`, new.`type`, new.`query_id`, new.`day`, new.`day`)
    ON CONFLICT (`site_id`, `type`, `query_id`) DO UPDATE
   SET `day` = max(`gsc_query_last_days`.`day`, excluded.`day`), `first_day` = min(`gsc_query_last_days`.`first_day`, excluded.`day`)
 WHERE excluded.`day` > `gsc_query_last_days`.`day` OR excluded.`day` < `gsc_query_last_days`.`first_day`;
END;
--> statement-breakpoint
-- A rollup row deleted on the query's newest or oldest day. Its only day: the query goes. Its newest: the stored days of
-- the type before it, newest first (a seek each on the key's (site_id, type, day) prefix), until one has the query (a
-- seek each), which happens at its oldest day at the latest. Its oldest: the same forward.
CREATE TRIGGER `gsc_day_query_totals_last_day_delete` AFTER DELETE ON `gsc_day_query_totals`
WHEN EXISTS (SELECT 1 FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`
                AND old.`day` IN (`day`, `first_day`)) BEGIN
  DELETE FROM `gsc_query_last_days` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id`
     AND `day` = old.`day` AND `first_day` = old.`day`;
  UPDATE `gsc_query_last_days` SET `day` = (
    WITH RECURSIVE `d`(`day`) AS (
      SELECT (SELECT max(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` < old.`day`)
      UNION ALL
      SELECT (SELECT max(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` < `d`.`day`)
        FROM `d`
       WHERE `d`.`day` IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`)
    )
    SELECT `day` FROM `d` WHERE `day` IS NOT NULL AND EXISTS (
      SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`))
   WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id` AND `day` = old.`day` AND `first_day` < old.`day`;
  UPDATE `gsc_query_last_days` SET `first_day` = (
    WITH RECURSIVE `d`(`day`) AS (
      SELECT (SELECT min(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` > old.`day`)
      UNION ALL
      SELECT (SELECT min(`day`) FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` > `d`.`day`)
        FROM `d`
       WHERE `d`.`day` IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`)
    )
    SELECT `day` FROM `d` WHERE `day` IS NOT NULL AND EXISTS (
      SELECT 1 FROM `gsc_day_query_totals` WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `day` = `d`.`day` AND `query_id` = old.`query_id`))
   WHERE `site_id` = old.`site_id` AND `type` = old.`type` AND `query_id` = old.`query_id` AND `first_day` = old.`day` AND `day` > old.`day`;
END;
--> statement-breakpoint
-- A site deleted: its rows here go first, so the cascade through its rollup finds none of them and walks no day.
CREATE TRIGGER `sites_query_last_days_delete` BEFORE DELETE ON `sites` BEGIN
  DELETE FROM `gsc_query_last_days` WHERE `site_id` = old.`id`;
END;
