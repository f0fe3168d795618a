ALTER TABLE `idempotency_keys` ADD `holder_host` text;--> statement-breakpoint
ALTER TABLE `idempotency_keys` ADD `holder_pid` integer;