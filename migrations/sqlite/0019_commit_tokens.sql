CREATE TABLE `commit_tokens` (
	`at` integer NOT NULL,
	`token` integer NOT NULL,
	`burned` integer DEFAULT false NOT NULL,
	PRIMARY KEY(`at`, `token`)
);
