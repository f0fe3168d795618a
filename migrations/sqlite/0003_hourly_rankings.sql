CREATE TABLE `hourly_rankings` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`date` text NOT NULL,
	`hour` integer NOT NULL,
	`hour_timestamp` text NOT NULL,
	`query` text NOT NULL,
	`page` text NOT NULL,
	`device` text NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`ctr` real DEFAULT 0 NOT NULL,
	`position` real DEFAULT 0 NOT NULL,
	`fetched_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `hourly_rankings_row_unique` ON `hourly_rankings` (`site_id`,`hour_timestamp`,`query`,`page`,`device`);--> statement-breakpoint
CREATE INDEX `hourly_rankings_site_date_hour_idx` ON `hourly_rankings` (`site_id`,`date`,`hour`);