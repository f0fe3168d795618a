CREATE TABLE `gsc_appearance_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`appearance` text NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `appearance`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `gsc_corrections` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`old_clicks` integer NOT NULL,
	`old_impressions` integer NOT NULL,
	`old_sum_position` integer NOT NULL,
	`new_clicks` integer NOT NULL,
	`new_impressions` integer NOT NULL,
	`new_sum_position` integer NOT NULL,
	`detected_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `gsc_corrections_site_day_idx` ON `gsc_corrections` (`site_id`,`day`);--> statement-breakpoint
CREATE TABLE `gsc_day_completeness` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`property_rows` integer DEFAULT 0 NOT NULL,
	`page_rows` integer DEFAULT 0 NOT NULL,
	`detail_rows` integer DEFAULT 0 NOT NULL,
	`appearance_rows` integer DEFAULT 0 NOT NULL,
	`page_truncated` integer DEFAULT false NOT NULL,
	`detail_truncated` integer DEFAULT false NOT NULL,
	`anonymized_share` real,
	`data_state` text DEFAULT 'final' NOT NULL,
	`derived` integer DEFAULT false NOT NULL,
	`fetched_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "gsc_day_completeness_state_check" CHECK("gsc_day_completeness"."data_state" in ('final','provisional'))
);
--> statement-breakpoint
CREATE TABLE `gsc_day_query_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`query_id` integer NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `query_id`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `gsc_page_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`page_id` integer NOT NULL,
	`country` text DEFAULT '' NOT NULL,
	`device` integer DEFAULT 0 NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `page_id`, `country`, `device`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `gsc_pages` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`page` text NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `gsc_pages_site_page_unique` ON `gsc_pages` (`site_id`,`page`);--> statement-breakpoint
CREATE TABLE `gsc_property_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`country` text DEFAULT '' NOT NULL,
	`device` integer DEFAULT 0 NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `country`, `device`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `gsc_query_detail` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`page_id` integer NOT NULL,
	`query_id` integer NOT NULL,
	`device` integer DEFAULT 0 NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `page_id`, `query_id`, `device`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
