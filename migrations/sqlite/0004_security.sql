CREATE TABLE `api_keys` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`prefix` text NOT NULL,
	`key_hash` text NOT NULL,
	`scope` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`expires_at` text,
	`revoked_at` text,
	`last_used_at` text,
	CONSTRAINT "api_keys_scope_check" CHECK("api_keys"."scope" in ('read','write','admin'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_prefix_unique` ON `api_keys` (`prefix`);--> statement-breakpoint
CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`actor` text NOT NULL,
	`key_id` integer,
	`ip` text,
	`method` text NOT NULL,
	`action` text NOT NULL,
	`target` text,
	`site_id` integer,
	`request_id` text,
	`outcome` text NOT NULL,
	`status` integer
);
--> statement-breakpoint
CREATE INDEX `audit_log_at_idx` ON `audit_log` (`at`,`id`);--> statement-breakpoint
CREATE INDEX `audit_log_key_idx` ON `audit_log` (`key_id`,`id`);--> statement-breakpoint
CREATE INDEX `audit_log_site_idx` ON `audit_log` (`site_id`,`id`);--> statement-breakpoint
CREATE TABLE `rate_limit_windows` (
	`bucket` text NOT NULL,
	`window_start` integer NOT NULL,
	`used` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`bucket`, `window_start`)
);
--> statement-breakpoint
ALTER TABLE `sites` ADD `archived_at` text;