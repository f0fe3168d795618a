-- Query search on PostgreSQL (src/db/pg/search-index.ts): gsc_queries holds each site's distinct query strings,
-- kept in step with gsc_performance_data by triggers with the semantics of SQLite's (migrations/sqlite/0006):
-- a row's first appearance of a (site, query) adds it, the delete of its last row removes it, a row whose site
-- or query changes moves it. Statement-level triggers over transition tables: one INSERT ... SELECT DISTINCT
-- per ingest batch instead of one per row, and one pass for a site's cascade delete.
-- pg_trgm is a trusted extension: the database owner may create it without superuser rights.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
--> statement-breakpoint
-- Data stored before these triggers existed (a database filled by db:copy from SQLite has it already).
INSERT INTO "gsc_queries" ("site_id", "query")
SELECT DISTINCT "site_id", "query" FROM "gsc_performance_data" ORDER BY 1, 2
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- As on SQLite: one row. PostgreSQL's trigram index is always current, so nothing moves the mark here.
INSERT INTO "gsc_queries_indexed" ("id", "indexed_through") VALUES (1, (SELECT coalesce(max("id"), 0) FROM "gsc_queries"))
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
-- Why the inserts lock and the deletes lock before they look (SQLite needs neither: one writer at a time).
-- A delete of a query's last row and a concurrent insert of a new row with that query would otherwise both
-- miss each other's uncommitted row, and the query would vanish from the list while a row still has it.
-- The insert takes a row lock on an existing pair (ON CONFLICT DO UPDATE ... WHERE false locks, DO NOTHING
-- does not); the delete locks its pairs first, then checks for remaining rows in a new statement, whose
-- snapshot (READ COMMITTED, the default) sees whatever the insert committed meanwhile; if the delete locks
-- first, the insert waits on the pair's deletion and then inserts it again. Both lock in (site_id, query) order.
CREATE FUNCTION "gsc_performance_data_queries_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "gsc_queries" ("site_id", "query")
  SELECT DISTINCT "site_id", "query" FROM "inserted_rows" ORDER BY 1, 2
  ON CONFLICT ("site_id", "query") DO UPDATE SET "query" = EXCLUDED."query" WHERE false;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "gsc_performance_data_queries_insert" AFTER INSERT ON "gsc_performance_data"
REFERENCING NEW TABLE AS "inserted_rows" FOR EACH STATEMENT EXECUTE FUNCTION "gsc_performance_data_queries_insert"();
--> statement-breakpoint
CREATE FUNCTION "gsc_performance_data_queries_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM "gsc_queries" q
    WHERE ("site_id", "query") IN (SELECT "site_id", "query" FROM "deleted_rows")
    ORDER BY q."site_id", q."query" FOR UPDATE;
  DELETE FROM "gsc_queries" q
   USING (SELECT DISTINCT "site_id", "query" FROM "deleted_rows") d
   WHERE q."site_id" = d."site_id" AND q."query" = d."query"
     AND NOT EXISTS (SELECT 1 FROM "gsc_performance_data" g WHERE g."site_id" = d."site_id" AND g."query" = d."query");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "gsc_performance_data_queries_delete" AFTER DELETE ON "gsc_performance_data"
REFERENCING OLD TABLE AS "deleted_rows" FOR EACH STATEMENT EXECUTE FUNCTION "gsc_performance_data_queries_delete"();
--> statement-breakpoint
-- No code changes a row's site or query today; if some does, the list stays right (SQLite: AFTER UPDATE OF
-- site_id, query). Per row: PostgreSQL allows no transition tables on a trigger with a column list.
CREATE FUNCTION "gsc_performance_data_queries_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "gsc_queries" ("site_id", "query") VALUES (NEW."site_id", NEW."query")
  ON CONFLICT ("site_id", "query") DO UPDATE SET "query" = EXCLUDED."query" WHERE false;
  PERFORM 1 FROM "gsc_queries" WHERE "site_id" = OLD."site_id" AND "query" = OLD."query" FOR UPDATE;
  DELETE FROM "gsc_queries"
   WHERE "site_id" = OLD."site_id" AND "query" = OLD."query"
     AND NOT EXISTS (SELECT 1 FROM "gsc_performance_data" WHERE "site_id" = OLD."site_id" AND "query" = OLD."query");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "gsc_performance_data_queries_update" AFTER UPDATE OF "site_id", "query" ON "gsc_performance_data"
FOR EACH ROW WHEN (OLD."site_id" IS DISTINCT FROM NEW."site_id" OR OLD."query" IS DISTINCT FROM NEW."query")
EXECUTE FUNCTION "gsc_performance_data_queries_update"();
