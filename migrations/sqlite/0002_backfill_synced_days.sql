-- Days synced before gsc_synced_days existed have their rows but no completion marker, so skip mode
-- fetched them again and /sync/status did not count them. Mark every (site, day, search type) with rows.
INSERT OR IGNORE INTO `gsc_synced_days` (`site_id`, `date`, `search_type`, `row_count`)
SELECT `site_id`, `date`, `search_type`, count(*) FROM `gsc_performance_data` GROUP BY `site_id`, `date`, `search_type`;
