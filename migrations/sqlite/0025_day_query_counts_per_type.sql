-- Issue 18: gsc_day_query_counts keeps one count per (site, day, type) over every device (src/sync/rollups.ts): the
-- per-device and every-type rows 0023 backfilled cost 6 µs a detail row to keep in the sync's switch, so they are
-- no longer kept nor read (those reads count the window's rows, as before 0022).
DELETE FROM gsc_day_query_counts WHERE type = 0 OR device <> 0;
