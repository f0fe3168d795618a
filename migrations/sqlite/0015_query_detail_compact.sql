-- Issue 18: the query detail moves from gsc_performance_data (page URL and query text in every row, text
-- date, ~290 bytes a row) to gsc_query_detail (integer day, type and device codes, page and query ids from
-- the gsc_pages / gsc_queries dictionaries, sum_position = round(position × impressions × 100)), in place and
-- in the migration's transaction. The day × query rollup is built from it, and each (site, day, type) with
-- detail gets property and page totals summed from the detail, marked derived in gsc_day_completeness (they
-- leave anonymized queries out until the day is fetched again). gsc_performance_data becomes a read-only
-- VIEW with the old columns (docs/design/grains.md).
INSERT INTO `gsc_pages` (`site_id`, `page`)
SELECT DISTINCT `site_id`, `page` FROM `gsc_performance_data` ORDER BY 1, 2 ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- The triggers kept gsc_queries in step already; a database where they were missing gets its queries here.
INSERT INTO `gsc_queries` (`site_id`, `query`)
SELECT DISTINCT `site_id`, `query` FROM `gsc_performance_data` ORDER BY 1, 2 ON CONFLICT DO NOTHING;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `gsc_performance_data_queries_insert`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `gsc_performance_data_queries_delete`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `gsc_performance_data_queries_update`;
--> statement-breakpoint
-- Grouped on the new key: two old rows differing only in the case of their device fold into one (summed).
-- A date that is not YYYY-MM-DD or an unknown search type gives NULL and fails the migration: nothing moves.
INSERT INTO `gsc_query_detail` (`site_id`, `day`, `type`, `page_id`, `query_id`, `device`, `clicks`, `impressions`, `sum_position`)
SELECT g.`site_id`,
       CAST(julianday(g.`date`) - 2440587.5 AS INTEGER) AS d,
       CASE g.`search_type` WHEN 'web' THEN 1 WHEN 'image' THEN 2 WHEN 'video' THEN 3 WHEN 'news' THEN 4
            WHEN 'discover' THEN 5 WHEN 'googleNews' THEN 6 END AS t,
       p.`id`, q.`id`,
       CASE upper(g.`device`) WHEN 'DESKTOP' THEN 1 WHEN 'MOBILE' THEN 2 WHEN 'TABLET' THEN 3 ELSE 0 END AS dv,
       sum(g.`clicks`), sum(g.`impressions`), sum(CAST(round(g.`position` * g.`impressions` * 100) AS INTEGER))
  FROM `gsc_performance_data` g
  JOIN `gsc_pages` p ON p.`site_id` = g.`site_id` AND p.`page` = g.`page`
  JOIN `gsc_queries` q ON q.`site_id` = g.`site_id` AND q.`query` = g.`query`
 GROUP BY g.`site_id`, d, t, p.`id`, q.`id`, dv
 ORDER BY g.`site_id`, d, t, p.`id`, q.`id`, dv;
--> statement-breakpoint
DROP TABLE `gsc_performance_data`;
--> statement-breakpoint
CREATE INDEX `gsc_day_query_totals_site_query_idx` ON `gsc_day_query_totals` (`site_id`,`query_id`,`day`,`clicks`,`impressions`,`sum_position`);
--> statement-breakpoint
INSERT INTO `gsc_day_query_totals` (`site_id`, `day`, `type`, `query_id`, `clicks`, `impressions`, `sum_position`)
SELECT `site_id`, `day`, `type`, `query_id`, sum(`clicks`), sum(`impressions`), sum(`sum_position`)
  FROM `gsc_query_detail` WHERE true
 GROUP BY `site_id`, `day`, `type`, `query_id`
ON CONFLICT DO NOTHING;
--> statement-breakpoint
INSERT INTO `gsc_property_totals` (`site_id`, `day`, `type`, `country`, `device`, `clicks`, `impressions`, `sum_position`)
SELECT `site_id`, `day`, `type`, '', `device`, sum(`clicks`), sum(`impressions`), sum(`sum_position`)
  FROM `gsc_query_detail` WHERE true
 GROUP BY `site_id`, `day`, `type`, `device`
ON CONFLICT DO NOTHING;
--> statement-breakpoint
INSERT INTO `gsc_page_totals` (`site_id`, `day`, `type`, `page_id`, `country`, `device`, `clicks`, `impressions`, `sum_position`)
SELECT `site_id`, `day`, `type`, `page_id`, '', `device`, sum(`clicks`), sum(`impressions`), sum(`sum_position`)
  FROM `gsc_query_detail` WHERE true
 GROUP BY `site_id`, `day`, `type`, `page_id`, `device`
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- final: the old completion marker (written for final days only) exists; otherwise provisional.
INSERT INTO `gsc_day_completeness` (`site_id`, `day`, `type`, `property_rows`, `page_rows`, `detail_rows`, `data_state`, `derived`)
SELECT d.`site_id`, d.`day`, d.`type`,
       (SELECT count(*) FROM `gsc_property_totals` t WHERE t.`site_id` = d.`site_id` AND t.`day` = d.`day` AND t.`type` = d.`type`),
       (SELECT count(*) FROM `gsc_page_totals` t WHERE t.`site_id` = d.`site_id` AND t.`day` = d.`day` AND t.`type` = d.`type`),
       count(*),
       CASE WHEN EXISTS (SELECT 1 FROM `gsc_synced_days` m WHERE m.`site_id` = d.`site_id` AND m.`date` = date(d.`day` * 86400, 'unixepoch')
                           AND m.`search_type` = CASE d.`type` WHEN 1 THEN 'web' WHEN 2 THEN 'image' WHEN 3 THEN 'video' WHEN 4 THEN 'news'
                                                 WHEN 5 THEN 'discover' WHEN 6 THEN 'googleNews' END)
            THEN 'final' ELSE 'provisional' END,
       1
  FROM `gsc_query_detail` d WHERE true
 GROUP BY d.`site_id`, d.`day`, d.`type`
ON CONFLICT DO NOTHING;
--> statement-breakpoint
CREATE VIEW `gsc_performance_data` AS
SELECT d.`site_id` AS `site_id`,
       date(d.`day` * 86400, 'unixepoch') AS `date`,
       p.`page` AS `page`,
       q.`query` AS `query`,
       CASE d.`device` WHEN 1 THEN 'DESKTOP' WHEN 2 THEN 'MOBILE' WHEN 3 THEN 'TABLET' ELSE '' END AS `device`,
       CASE d.`type` WHEN 1 THEN 'web' WHEN 2 THEN 'image' WHEN 3 THEN 'video' WHEN 4 THEN 'news'
            WHEN 5 THEN 'discover' WHEN 6 THEN 'googleNews' END AS `search_type`,
       d.`clicks` AS `clicks`,
       d.`impressions` AS `impressions`,
       CASE WHEN d.`impressions` > 0 THEN CAST(d.`clicks` AS REAL) / d.`impressions` ELSE 0.0 END AS `ctr`,
       CASE WHEN d.`impressions` > 0 THEN d.`sum_position` / 100.0 / d.`impressions` ELSE 0.0 END AS `position`
  FROM `gsc_query_detail` d
  JOIN `gsc_pages` p ON p.`id` = d.`page_id`
  JOIN `gsc_queries` q ON q.`id` = d.`query_id`;
