-- Query search on an index: the FTS5 trigram index of each site's distinct query strings (gsc_queries).
-- Triggers keep gsc_queries in step with gsc_performance_data on every write (sync upserts, stale-row
-- deletes, a site's cascade delete). The FTS index itself is written in batches by indexPendingQueries
-- (src/search/queries.ts): it holds the ids up to gsc_queries_indexed.indexed_through, and search scans
-- the few later ones directly. Per-row FTS writes cost up to 2.5x the ingest CPU (BENCHMARKS.md).
CREATE VIRTUAL TABLE `gsc_queries_fts` USING fts5(`query`, content='gsc_queries', content_rowid='id', tokenize='trigram case_sensitive 0');
--> statement-breakpoint
INSERT INTO `gsc_queries` (`site_id`, `query`) SELECT DISTINCT `site_id`, `query` FROM `gsc_performance_data` ORDER BY `site_id`, `query`;
--> statement-breakpoint
INSERT INTO `gsc_queries_fts` (`gsc_queries_fts`) VALUES ('rebuild');
--> statement-breakpoint
INSERT INTO `gsc_queries_indexed` (`id`, `indexed_through`) VALUES (1, (SELECT coalesce(max(`id`), 0) FROM `gsc_queries`));
--> statement-breakpoint
-- A row's first appearance of a query adds it; an upsert that updates an existing row inserts nothing.
CREATE TRIGGER `gsc_performance_data_queries_insert` AFTER INSERT ON `gsc_performance_data` BEGIN
  INSERT INTO `gsc_queries` (`site_id`, `query`) VALUES (new.`site_id`, new.`query`) ON CONFLICT DO NOTHING;
END;
--> statement-breakpoint
-- The last row of a query going removes it (one probe of the (site_id, query, ...) index per deleted row).
CREATE TRIGGER `gsc_performance_data_queries_delete` AFTER DELETE ON `gsc_performance_data`
WHEN NOT EXISTS (SELECT 1 FROM `gsc_performance_data` WHERE `site_id` = old.`site_id` AND `query` = old.`query`) BEGIN
  DELETE FROM `gsc_queries` WHERE `site_id` = old.`site_id` AND `query` = old.`query`;
END;
--> statement-breakpoint
-- No code changes a row's site or query today; if some does, the list stays right.
CREATE TRIGGER `gsc_performance_data_queries_update` AFTER UPDATE OF `site_id`, `query` ON `gsc_performance_data` BEGIN
  INSERT INTO `gsc_queries` (`site_id`, `query`) VALUES (new.`site_id`, new.`query`) ON CONFLICT DO NOTHING;
  DELETE FROM `gsc_queries` WHERE `site_id` = old.`site_id` AND `query` = old.`query`
    AND NOT EXISTS (SELECT 1 FROM `gsc_performance_data` WHERE `site_id` = old.`site_id` AND `query` = old.`query`);
END;
--> statement-breakpoint
-- A query already in the FTS index leaves it with its row.
CREATE TRIGGER `gsc_queries_fts_delete` AFTER DELETE ON `gsc_queries`
WHEN old.`id` <= (SELECT `indexed_through` FROM `gsc_queries_indexed` WHERE `id` = 1) BEGIN
  INSERT INTO `gsc_queries_fts` (`gsc_queries_fts`, `rowid`, `query`) VALUES ('delete', old.`id`, old.`query`);
END;
--> statement-breakpoint
CREATE TRIGGER `gsc_queries_fts_update` AFTER UPDATE ON `gsc_queries` BEGIN
  INSERT INTO `gsc_queries_fts` (`gsc_queries_fts`, `rowid`, `query`)
    SELECT 'delete', old.`id`, old.`query` WHERE old.`id` <= (SELECT `indexed_through` FROM `gsc_queries_indexed` WHERE `id` = 1);
  INSERT INTO `gsc_queries_fts` (`rowid`, `query`)
    SELECT new.`id`, new.`query` WHERE new.`id` <= (SELECT `indexed_through` FROM `gsc_queries_indexed` WHERE `id` = 1);
END;
