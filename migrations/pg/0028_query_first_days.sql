-- Issue 18: each query's oldest stored day beside its newest (gsc_query_last_days.first_day), as on SQLite (sqlite 0033,
-- where the rollup is keyed by day and a deleted newest day is found again by walking the days back, bounded by it).
-- Here the rollup's (site_id, query_id, day, type) key finds both ends in a seek each; the column is kept the same so
-- both engines hold one table. A site's deletion removes its rows here first (sites_query_last_days_delete), as on
-- SQLite. The triggers keep 0025's advisory locks and write only rows whose newest day grows or oldest day shrinks.
ALTER TABLE "gsc_query_last_days" ADD COLUMN "first_day" integer;
--> statement-breakpoint
UPDATE "gsc_query_last_days" l SET "first_day" = m."first_day"
  FROM (SELECT "site_id", "type", "query_id", min("day") AS "first_day" FROM "gsc_day_query_totals" GROUP BY "site_id", "type", "query_id") m
 WHERE l."site_id" = m."site_id" AND l."type" = m."type" AND l."query_id" = m."query_id";
--> statement-breakpoint
ALTER TABLE "gsc_query_last_days" ALTER COLUMN "first_day" SET NOT NULL;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "gsc_day_query_totals_last_day_added"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT DISTINCT site_id, type FROM added ORDER BY site_id, type LOOP
    PERFORM pg_advisory_xact_lock(k.site_id, k.type);
  END LOOP;
  INSERT INTO gsc_query_last_days (site_id, type, query_id, day, first_day)
  SELECT a.site_id, a.type, a.query_id, a.day, a.first_day
    FROM (SELECT site_id, type, query_id, max(day) AS day, min(day) AS first_day FROM added GROUP BY site_id, type, query_id) a
    LEFT JOIN gsc_query_last_days l ON l.site_id = a.site_id AND l.type = a.type AND l.query_id = a.query_id
   WHERE l.day IS NULL OR a.day > l.day OR a.first_day < l.first_day
  ON CONFLICT (site_id, type, query_id) DO UPDATE
     SET day = greatest(gsc_query_last_days.day, excluded.day), first_day = least(gsc_query_last_days.first_day, excluded.first_day)
   WHERE excluded.day > gsc_query_last_days.day OR excluded.first_day < gsc_query_last_days.first_day;
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
    SELECT DISTINCT l.site_id, l.type, l.query_id, l.day AS old_day, l.first_day AS old_first FROM removed o
      JOIN gsc_query_last_days l ON l.site_id = o.site_id AND l.type = o.type AND l.query_id = o.query_id
                                AND (l.day = o.day OR l.first_day = o.day)),
  found AS (
    SELECT g.site_id, g.type, g.query_id, g.old_day, g.old_first,
           (SELECT max(t.day) FROM gsc_day_query_totals t WHERE t.site_id = g.site_id AND t.query_id = g.query_id AND t.type = g.type) AS day,
           (SELECT min(t.day) FROM gsc_day_query_totals t WHERE t.site_id = g.site_id AND t.query_id = g.query_id AND t.type = g.type) AS first_day
      FROM gone g),
  dropped AS (
    DELETE FROM gsc_query_last_days l USING found f
     WHERE f.day IS NULL AND l.site_id = f.site_id AND l.type = f.type AND l.query_id = f.query_id
       AND l.day = f.old_day AND l.first_day = f.old_first)
  UPDATE gsc_query_last_days l SET day = f.day, first_day = f.first_day FROM found f
   WHERE f.day IS NOT NULL AND l.site_id = f.site_id AND l.type = f.type AND l.query_id = f.query_id
     AND l.day = f.old_day AND l.first_day = f.old_first;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "sites_query_last_days_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM gsc_query_last_days WHERE site_id = OLD.id;
  RETURN OLD;
END $$;
--> statement-breakpoint
CREATE TRIGGER "sites_query_last_days_delete" BEFORE DELETE ON "sites"
  FOR EACH ROW EXECUTE FUNCTION "sites_query_last_days_delete"();
