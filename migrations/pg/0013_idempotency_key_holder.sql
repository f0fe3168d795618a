ALTER TABLE "idempotency_keys" ADD COLUMN "holder_host" text;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "holder_pid" integer;