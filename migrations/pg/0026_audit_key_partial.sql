DROP INDEX "audit_log_key_idx";--> statement-breakpoint
CREATE INDEX "audit_log_key_idx" ON "audit_log" USING btree ("key_id","id") WHERE key_id is not null;