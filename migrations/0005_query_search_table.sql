CREATE TABLE `gsc_queries` (
	`id` integer PRIMARY KEY NOT NULL,
	`site_id` integer NOT NULL,
	`query` text NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `gsc_queries_site_query_unique` ON `gsc_queries` (`site_id`,`query`);