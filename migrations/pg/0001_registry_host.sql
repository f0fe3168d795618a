-- db_connections keyed by (host, pid). Its rows are heartbeats (live processes write theirs again
-- every 2 s), so the old rows, which have no host, are dropped.
DELETE FROM "db_connections";--> statement-breakpoint
ALTER TABLE "db_connections" DROP CONSTRAINT "db_connections_pkey";--> statement-breakpoint
ALTER TABLE "db_connections" ADD COLUMN "host" text NOT NULL;--> statement-breakpoint
ALTER TABLE "db_connections" ADD CONSTRAINT "db_connections_host_pid_pk" PRIMARY KEY("host","pid");
