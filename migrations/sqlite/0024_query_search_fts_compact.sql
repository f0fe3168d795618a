-- Issue 18 (bytes per row): query search's FTS5 trigram index without token positions (detail=none) and
-- without per-row column sizes (columnsize=0: only ranking functions read them; search orders by totals).
-- Measured after VACUUM on 1 M anchors-shaped rows (bench/bytes-per-row.ts): 3.5 -> 1.0 B per detail row.
-- A phrase cannot be asked of such an index: search asks for the term's trigrams ANDed (a superset of the
-- queries containing it), and its LIKE keeps exactly those (src/db/sqlite/search.ts, ftsTrigrams).
-- Rebuilt in place from gsc_queries in the migration's transaction: every query is then indexed, so the
-- mark moves to the highest id. The triggers on gsc_queries that write the index are unchanged (they
-- name the table, which exists again before they next fire).
DROP TABLE `gsc_queries_fts`;
--> statement-breakpoint
CREATE VIRTUAL TABLE `gsc_queries_fts` USING fts5(`query`, content='gsc_queries', content_rowid='id', tokenize='trigram case_sensitive 0', detail=none, columnsize=0);
--> statement-breakpoint
INSERT INTO `gsc_queries_fts` (`gsc_queries_fts`) VALUES ('rebuild');
--> statement-breakpoint
UPDATE `gsc_queries_indexed` SET `indexed_through` = (SELECT coalesce(max(`id`), 0) FROM `gsc_queries`) WHERE `id` = 1;
