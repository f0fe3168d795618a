-- Issue 18: Search Console's property, page and appearance totals as WITHOUT ROWID tables, clustered on their
-- primary key (site_id, day, type, ...): one b-tree each instead of a rowid table plus the key's unique index,
-- as 0016 did for the query detail and its rollup. Every read of these tables seeks (site_id, day) and now reads
-- the rows from the key's b-tree itself. Measured on 1 M anchors-shaped rows (bench:analytics --data anchors,
-- docs/benchmarks/analytics-sizes.md): page totals 28.6 -> 14.0 bytes per detail row. Rows are copied in key order; the
-- migration runs in one transaction (drizzle's migrator), so a database is either moved or left as it was.
-- drizzle-kit cannot say WITHOUT ROWID: a later drizzle-kit rebuild of these tables must keep it by hand.
CREATE TABLE `__new_gsc_property_totals` (
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
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_property_totals` (`site_id`, `day`, `type`, `country`, `device`, `clicks`, `impressions`, `sum_position`)
  SELECT `site_id`, `day`, `type`, `country`, `device`, `clicks`, `impressions`, `sum_position` FROM `gsc_property_totals` ORDER BY 1, 2, 3, 4, 5;
--> statement-breakpoint
DROP TABLE `gsc_property_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_property_totals` RENAME TO `gsc_property_totals`;
--> statement-breakpoint
CREATE TABLE `__new_gsc_page_totals` (
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
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_page_totals` (`site_id`, `day`, `type`, `page_id`, `country`, `device`, `clicks`, `impressions`, `sum_position`)
  SELECT `site_id`, `day`, `type`, `page_id`, `country`, `device`, `clicks`, `impressions`, `sum_position` FROM `gsc_page_totals` ORDER BY 1, 2, 3, 4, 5, 6;
--> statement-breakpoint
DROP TABLE `gsc_page_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_page_totals` RENAME TO `gsc_page_totals`;
--> statement-breakpoint
CREATE TABLE `__new_gsc_appearance_totals` (
	`site_id` integer NOT NULL,
	`day` integer NOT NULL,
	`type` integer NOT NULL,
	`appearance` text NOT NULL,
	`clicks` integer DEFAULT 0 NOT NULL,
	`impressions` integer DEFAULT 0 NOT NULL,
	`sum_position` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `day`, `type`, `appearance`),
	FOREIGN KEY (`site_id`) REFERENCES `sites`(`id`) ON UPDATE no action ON DELETE cascade
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_gsc_appearance_totals` (`site_id`, `day`, `type`, `appearance`, `clicks`, `impressions`, `sum_position`)
  SELECT `site_id`, `day`, `type`, `appearance`, `clicks`, `impressions`, `sum_position` FROM `gsc_appearance_totals` ORDER BY 1, 2, 3, 4;
--> statement-breakpoint
DROP TABLE `gsc_appearance_totals`;
--> statement-breakpoint
ALTER TABLE `__new_gsc_appearance_totals` RENAME TO `gsc_appearance_totals`;
