CREATE TABLE "gsc_staged_detail" (
	"task_id" integer NOT NULL,
	"page_id" integer NOT NULL,
	"query_id" integer NOT NULL,
	"device" integer NOT NULL,
	"clicks" integer NOT NULL,
	"impressions" integer NOT NULL,
	"sum_position" bigint NOT NULL,
	CONSTRAINT "gsc_staged_detail_task_id_page_id_query_id_device_pk" PRIMARY KEY("task_id","page_id","query_id","device")
);
--> statement-breakpoint
CREATE TABLE "gsc_staged_query_totals" (
	"task_id" integer NOT NULL,
	"query_id" integer NOT NULL,
	"clicks" integer NOT NULL,
	"impressions" integer NOT NULL,
	"sum_position" bigint NOT NULL,
	CONSTRAINT "gsc_staged_query_totals_task_id_query_id_pk" PRIMARY KEY("task_id","query_id")
);
