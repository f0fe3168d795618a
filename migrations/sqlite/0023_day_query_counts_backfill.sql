-- Issue 18: fills gsc_day_query_counts for the days already stored (the sync keeps it from now on: src/sync/rollups.ts
-- refreshDayQueryCounts, the same counts day by day). In the migration's transaction: all or nothing.
INSERT INTO gsc_day_query_counts (site_id, day, type, device, queries)
SELECT site_id, day, type, 0, count(*) FROM gsc_day_query_totals GROUP BY site_id, day, type;
--> statement-breakpoint
INSERT INTO gsc_day_query_counts (site_id, day, type, device, queries)
SELECT site_id, day, type, device, count(DISTINCT query_id) FROM gsc_query_detail WHERE device > 0 GROUP BY site_id, day, type, device;
--> statement-breakpoint
INSERT INTO gsc_day_query_counts (site_id, day, type, device, queries)
SELECT site_id, day, 0, 0, count(DISTINCT query_id) FROM gsc_day_query_totals GROUP BY site_id, day;
--> statement-breakpoint
INSERT INTO gsc_day_query_counts (site_id, day, type, device, queries)
SELECT site_id, day, 0, device, count(DISTINCT query_id) FROM gsc_query_detail WHERE device > 0 GROUP BY site_id, day, device;
