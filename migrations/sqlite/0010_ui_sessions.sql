CREATE TABLE `ui_sessions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`token_hash` text NOT NULL,
	`key_id` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`expires_at` text NOT NULL,
	`revoked_at` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `ui_sessions_token_hash_unique` ON `ui_sessions` (`token_hash`);--> statement-breakpoint
CREATE INDEX `ui_sessions_key_id_idx` ON `ui_sessions` (`key_id`);