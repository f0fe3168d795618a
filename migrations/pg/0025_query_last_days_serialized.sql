-- Issue 18: the newest-day triggers (0023) of two writers of one site's days no longer deadlock or leave a stale day.
-- Before, each upsert locked every query row it met (ON CONFLICT DO UPDATE ... WHERE locks the row even when the WHERE
-- is false) in no fixed order, statement after statement, so two sync workers writing different days of one site
-- waited on each other's rows and could deadlock; and a deletion's recount of a query's newest day read the rollup as
-- of its own statement's start, missing a day another writer had just added (the newest day left older than stored).
-- Now each trigger first takes a transaction advisory lock per (site, type) of its rows, in key order (the two-key
-- advisory locks are this table's alone): the writers of one site and type keep this table one at a time, and each
-- trigger reads the rollup after the lock, so it sees what the previous holder committed. The upsert writes only the
-- rows whose newest day grows (no lock nor WAL record for the rest: most queries of a backfilled or re-fetched day).
-- Statements that added or deleted no row take no lock.
CREATE OR REPLACE FUNCTION "gsc_day_query_totals_last_day_added"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT DISTINCT site_id, type FROM added ORDER BY site_id, type LOOP
    PERFORM pg_advisory_xact_lock(k.site_id, k.type);
  END LOOP;
  INSERT INTO gsc_query_last_days (site_id, type, query_id, day)
  SELECT a.site_id, a.type, a.query_id, a.day
    FROM (SELECT site_id, type, query_id, max(day) AS day FROM added GROUP BY site_id, type, query_id) a
    LEFT JOIN gsc_query_last_days l ON l.site_id = a.site_id AND l.type = a.type AND l.query_id = a.query_id
   WHERE l.day IS NULL OR a.day > l.day
  ON CONFLICT (site_id, type, query_id) DO UPDATE SET day = excluded.day WHERE excluded.day > gsc_query_last_days.day;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "gsc_day_query_totals_last_day_removed"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT DISTINCT site_id, type FROM removed ORDER BY site_id, type LOOP
    PERFORM pg_advisory_xact_lock(k.site_id, k.type);
  END LOOP;
  WITH gone AS (
    SELECT DISTINCT l.site_id, l.type, l.query_id, l.day AS old_day FROM removed o
      JOIN gsc_query_last_days l ON l.site_id = o.site_id AND l.type = o.type AND l.query_id = o.query_id AND l.day = o.day),
  found AS (
    SELECT g.site_id, g.type, g.query_id, g.old_day,
           (SELECT max(t.day) FROM gsc_day_query_totals t WHERE t.site_id = g.site_id AND t.query_id = g.query_id AND t.type = g.type) AS day
      FROM gone g),
  dropped AS (
    DELETE FROM gsc_query_last_days l USING found f
     WHERE f.day IS NULL AND l.site_id = f.site_id AND l.type = f.type AND l.query_id = f.query_id AND l.day = f.old_day)
  UPDATE gsc_query_last_days l SET day = f.day FROM found f
   WHERE f.day IS NOT NULL AND l.site_id = f.site_id AND l.type = f.type AND l.query_id = f.query_id AND l.day = f.old_day;
  RETURN NULL;
END $$;
