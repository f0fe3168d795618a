-- Issue 17: a big day's staging tables (src/sync/staged-day.ts), WITHOUT ROWID like the detail (0016): one b-tree each.
-- Edited by hand after drizzle-kit generate (it cannot say WITHOUT ROWID).
CREATE TABLE `gsc_staged_detail` (
	`task_id` integer NOT NULL,
	`page_id` integer NOT NULL,
	`query_id` integer NOT NULL,
	`device` integer NOT NULL,
	`clicks` integer NOT NULL,
	`impressions` integer NOT NULL,
	`sum_position` integer NOT NULL,
	PRIMARY KEY(`task_id`, `page_id`, `query_id`, `device`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `gsc_staged_query_totals` (
	`task_id` integer NOT NULL,
	`query_id` integer NOT NULL,
	`clicks` integer NOT NULL,
	`impressions` integer NOT NULL,
	`sum_position` integer NOT NULL,
	PRIMARY KEY(`task_id`, `query_id`)
) WITHOUT ROWID;
