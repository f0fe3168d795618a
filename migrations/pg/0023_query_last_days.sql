-- Issue 18: each query's newest day in the day × query rollup per search type, kept by triggers on gsc_day_query_totals
-- (every path that writes the rollup: the sync, the copy, a site's deletion; a copy's TRUNCATE empties it too,
-- src/db/copy). A window ending on or after a type's newest day holds exactly the queries whose newest day is in it:
-- the insight overview counts them here (one row a query, src/insights/queries.ts) instead of the window's rollup rows.
-- Statement triggers over the rows each statement added or deleted. No foreign key (see the schema).
CREATE TABLE "gsc_query_last_days" (
	"site_id" integer NOT NULL,
	"type" integer NOT NULL,
	"query_id" integer NOT NULL,
	"day" integer NOT NULL,
	CONSTRAINT "gsc_query_last_days_site_id_type_query_id_pk" PRIMARY KEY("site_id","type","query_id")
);
--> statement-breakpoint
INSERT INTO "gsc_query_last_days" ("site_id", "type", "query_id", "day")
SELECT "site_id", "type", "query_id", max("day") FROM "gsc_day_query_totals" GROUP BY "site_id", "query_id", "type";
--> statement-breakpoint
-- Rows added to the rollup: each query's newest day moves to the newest added when newer (the upsert's condition is
-- checked on the row's latest version, so concurrent writers of one query keep the newest).
CREATE FUNCTION "gsc_day_query_totals_last_day_added"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO gsc_query_last_days (site_id, type, query_id, day)
  SELECT site_id, type, query_id, max(day) FROM added GROUP BY site_id, type, query_id
  ON CONFLICT (site_id, type, query_id) DO UPDATE SET day = excluded.day WHERE excluded.day > gsc_query_last_days.day;
  RETURN NULL;
END $$;
--> statement-breakpoint
-- Rows deleted from the rollup on a query's newest day: its newest day is found again (the primary key's range), or it
-- goes; only while the row still holds that day (a concurrent writer that moved it to a newer one wins).
CREATE FUNCTION "gsc_day_query_totals_last_day_removed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
--> statement-breakpoint
CREATE TRIGGER "gsc_day_query_totals_last_day_insert" AFTER INSERT ON "gsc_day_query_totals"
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION "gsc_day_query_totals_last_day_added"();
--> statement-breakpoint
CREATE TRIGGER "gsc_day_query_totals_last_day_delete" AFTER DELETE ON "gsc_day_query_totals"
  REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION "gsc_day_query_totals_last_day_removed"();
