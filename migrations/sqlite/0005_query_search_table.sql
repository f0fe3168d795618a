CREATE TABLE `gsc_queries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` integer NOT NULL,
	`query` text NOT NULL,
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `gsc_queries_site_query_unique` ON `gsc_queries` (`site_id`,`query`);--> statement-breakpoint
CREATE TABLE `gsc_queries_indexed` (
	`id` integer PRIMARY KEY NOT NULL,
	`indexed_through` integer DEFAULT 0 NOT NULL,
	CONSTRAINT "gsc_queries_indexed_one_row" CHECK("gsc_queries_indexed"."id" = 1)
);
