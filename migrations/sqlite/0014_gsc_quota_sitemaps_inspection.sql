CREATE TABLE `gsc_quota_windows` (
	`bucket` text NOT NULL,
	`window_start` integer NOT NULL,
	`used` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`bucket`, `window_start`)
);
--> statement-breakpoint
CREATE TABLE `gsc_sitemap_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`path` text NOT NULL,
	`seen_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`type` text,
	`last_submitted` text,
	`last_downloaded` text,
	`is_pending` integer DEFAULT false NOT NULL,
	`is_sitemaps_index` integer DEFAULT false NOT NULL,
	`warnings` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`contents` text DEFAULT '[]' NOT NULL,
	`removed` integer DEFAULT false NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `gsc_sitemap_history_site_path_idx` ON `gsc_sitemap_history` (`site_id`,`path`,`id`);--> statement-breakpoint
CREATE TABLE `gsc_sitemaps` (
	`site_id` integer NOT NULL,
	`path` text NOT NULL,
	`type` text,
	`last_submitted` text,
	`last_downloaded` text,
	`is_pending` integer DEFAULT false NOT NULL,
	`is_sitemaps_index` integer DEFAULT false NOT NULL,
	`warnings` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`contents` text DEFAULT '[]' NOT NULL,
	`first_seen_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`checked_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`removed_at` text,
	PRIMARY KEY(`site_id`, `path`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `gsc_url_inspections` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`url` text NOT NULL,
	`inspected_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`verdict` text,
	`coverage_state` text,
	`indexing_state` text,
	`robots_txt_state` text,
	`page_fetch_state` text,
	`last_crawl_time` text,
	`crawled_as` text,
	`google_canonical` text,
	`user_canonical` text,
	`sitemaps` text DEFAULT '[]' NOT NULL,
	`referring_urls` text DEFAULT '[]' NOT NULL,
	`mobile_verdict` text,
	`rich_results_verdict` text,
	`inspection_link` text,
	`chosen_by` text DEFAULT 'request' NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `gsc_url_inspections_site_url_idx` ON `gsc_url_inspections` (`site_id`,`url`,`id`);--> statement-breakpoint
CREATE INDEX `gsc_url_inspections_site_id_idx` ON `gsc_url_inspections` (`site_id`,`id`);