-- Issue 18: fills gsc_week_page_totals from the page totals already stored (the sync keeps it from now on: src/sync/rollups.ts,
-- the same sums day by day). In the migration's transaction: all or nothing.
INSERT INTO gsc_week_page_totals (site_id, week, type, page_id, clicks, impressions, sum_position)
SELECT site_id, day / 7, type, page_id, sum(clicks), sum(impressions), sum(sum_position)
  FROM gsc_page_totals GROUP BY site_id, day / 7, type, page_id;
