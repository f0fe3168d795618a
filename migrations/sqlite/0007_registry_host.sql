-- db_connections keyed by (host, pid). Its rows are heartbeats (live processes write theirs again
-- every 2 s), so the old rows, which have no host, are not copied.
DROP TABLE `db_connections`;--> statement-breakpoint
CREATE TABLE `db_connections` (
	`host` text NOT NULL,
	`pid` integer NOT NULL,
	`role` text NOT NULL,
	`started_at` text NOT NULL,
	`last_seen_at` text NOT NULL,
	`busy_retries` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`host`, `pid`)
);
