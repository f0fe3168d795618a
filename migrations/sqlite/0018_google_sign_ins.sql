CREATE TABLE `google_sign_ins` (
	`account_id` integer PRIMARY KEY NOT NULL,
	`sealed` text NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`account_id`) REFERENCES `google_accounts`(`id`) ON UPDATE no action ON DELETE cascade
);
