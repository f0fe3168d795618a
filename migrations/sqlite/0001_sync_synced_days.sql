CREATE TABLE `gsc_synced_days` (
	`site_id` integer NOT NULL,
	`date` text NOT NULL,
	`search_type` text NOT NULL,
	`row_count` integer DEFAULT 0 NOT NULL,
	`synced_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	PRIMARY KEY(`site_id`, `date`, `search_type`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
