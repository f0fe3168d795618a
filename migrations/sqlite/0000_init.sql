CREATE TABLE `db_connections` (
	`pid` integer PRIMARY KEY NOT NULL,
	`role` text NOT NULL,
	`started_at` text NOT NULL,
	`last_seen_at` text NOT NULL,
	`busy_retries` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `gsc_performance_data` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`date` text NOT NULL,
	`page` text NOT NULL,
	`query` text NOT NULL,
	`device` text NOT NULL,
	`search_type` text NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`ctr` real DEFAULT 0 NOT NULL,
	`position` real DEFAULT 0 NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `gsc_performance_data_row_unique` ON `gsc_performance_data` (`site_id`,`date`,`page`,`query`,`device`,`search_type`);--> statement-breakpoint
CREATE INDEX `gsc_performance_data_site_query_idx` ON `gsc_performance_data` (`site_id`,`query`,`date`,`clicks`,`impressions`,`ctr`,`position`);--> statement-breakpoint
CREATE TABLE `sites` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`domain` text NOT NULL,
	`name` text NOT NULL,
	`category` text,
	`is_active` integer DEFAULT true NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sites_domain_unique` ON `sites` (`domain`);--> statement-breakpoint
CREATE INDEX `sites_name_id_idx` ON `sites` (`name`,`id`);--> statement-breakpoint
CREATE INDEX `sites_active_name_id_idx` ON `sites` (`is_active`,`name`,`id`);--> statement-breakpoint
CREATE TABLE `sync_tasks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`task_type` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`start_date` text,
	`end_date` text,
	`total_records` integer DEFAULT 0 NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`completed_at` text,
	`params` text DEFAULT '{}' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`progress_done` integer DEFAULT 0 NOT NULL,
	`progress_total` integer DEFAULT 0 NOT NULL,
	`stats_synced` integer DEFAULT 0 NOT NULL,
	`stats_failed` integer DEFAULT 0 NOT NULL,
	`stats_skipped` integer DEFAULT 0 NOT NULL,
	`error` text,
	`worker_pid` integer,
	`locked_until` text,
	`heartbeat_at` text,
	`run_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`started_at` text,
	`cancel_requested` integer DEFAULT false NOT NULL,
	`scheduled_for` text,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "sync_tasks_status_check" CHECK("sync_tasks"."status" in ('pending','running','completed','failed','cancelled'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sync_tasks_one_active_idx` ON `sync_tasks` (`site_id`,`task_type`) WHERE status in ('pending','running');--> statement-breakpoint
CREATE UNIQUE INDEX `sync_tasks_scheduled_idx` ON `sync_tasks` (`site_id`,`task_type`,`scheduled_for`) WHERE scheduled_for is not null;--> statement-breakpoint
CREATE INDEX `sync_tasks_claim_idx` ON `sync_tasks` (`status`,`run_at`,`id`);--> statement-breakpoint
CREATE INDEX `sync_tasks_site_idx` ON `sync_tasks` (`site_id`,`id`);