-- Every change to api_keys notifies 'sitesync_api_keys' (after commit, to every listening session): the HTTP
-- processes remember "no active key" (protected mode) until told otherwise, instead of asking the table on
-- every keyless request (src/db/pg/key-changes.ts). PostgreSQL only: SQLite's readers use PRAGMA data_version.
CREATE OR REPLACE FUNCTION sitesync_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sitesync_api_keys', '');
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION sitesync_api_keys_notify();
