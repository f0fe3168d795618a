import { z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import { syncTasks } from "../db/sqlite/schema.ts";
import { searchTypeCodes } from "../db/enums.ts";
import { taskStatuses } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { isDate, MAX_RANGE_DAYS } from "./dates.ts";
import { ctrOf, dayDate, positionOf } from "./grains.ts";
import { syncModes } from "./handlers/days.ts";
import type { JobRow } from "./queries.ts";

/** A positive integer id in the path, under the given parameter name. */
const pathId = (name: string) => SiteIdParams.shape.id.openapi({ param: { name, in: "path" }, example: "1" });

export const SiteIdParam = z.object({ site_id: pathId("site_id") });
export const JobIdParam = z.object({ job_id: pathId("job_id") });

export const DateString = z
  .string()
  .refine(isDate, "expected a calendar date YYYY-MM-DD")
  .openapi({ example: "2026-11-20", format: "date" });

/** An integer query parameter between `min` and `max`. */
export const intParam = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, "expected an integer")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const TriggerQuery = z.object({
  days: intParam(1, MAX_RANGE_DAYS)
    .default(7)
    .openapi({ param: { name: "days", in: "query" }, example: "7", description: "The N days ending at today minus 2 (UTC)" }),
  sync_mode: z
    .enum(syncModes)
    .default("skip")
    .openapi({ param: { name: "sync_mode", in: "query" } }),
});

export const CreateTaskSchema = z
  .object({
    task_type: z
      .string()
      .min(1)
      .max(64)
      .default("daily_sync")
      .openapi({ example: "daily_sync", description: "daily_sync or hourly_sync (the last ~10 days, up to today)" }),
    start_date: DateString.optional(),
    end_date: DateString.optional(),
    days: z.number().int().min(1).max(MAX_RANGE_DAYS).optional(),
    sync_mode: z.enum(syncModes).default("skip"),
    run_at: z.iso.datetime({ offset: true }).optional().openapi({
      description: "Do not start before this moment (ISO 8601, at most 7 days ahead); default now",
      example: "2026-11-25T03:00:00Z",
    }),
  })
  .strict()
  .openapi("CreateSyncTask");
export type CreateTask = z.infer<typeof CreateTaskSchema>;

export const TaskCreatedSchema = z
  .object({
    job_id: z.number().int(),
    message: z.string(),
    status_url: z.string().openapi({ example: "/api/v1/sync/job/1" }),
  })
  .openapi("SyncTaskCreated");

/** Furthest ahead a task may be queued: a pending task blocks its site's other tasks of that type. */
export const MAX_RUN_AT_DAYS = 7;

/** When a task may start: `run_at` (default now), at most MAX_RUN_AT_DAYS ahead (400 otherwise). */
export function resolveRunAt(runAt: string | undefined, now = new Date()): Date {
  if (runAt === undefined) return now;
  const at = new Date(runAt);
  const latest = new Date(now.getTime() + MAX_RUN_AT_DAYS * 86_400_000);
  if (at > latest) {
    const message = `run_at may be at most ${MAX_RUN_AT_DAYS} days ahead (until ${latest.toISOString()})`;
    throw new ApiError("validation_failed", `invalid run_at: ${message}`, [{ path: "run_at", message }]);
  }
  return at;
}

const boolParam = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const ListJobsQuery = z.object({
  active_only: boolParam.default(false).openapi({ param: { name: "active_only", in: "query" }, description: "Only pending and running" }),
  site_id: pathId("site_id")
    .optional()
    .openapi({ param: { name: "site_id", in: "query" } }),
  status: z
    .enum(taskStatuses)
    .optional()
    .openapi({ param: { name: "status", in: "query" } }),
  limit: intParam(1, 500)
    .default(50)
    .openapi({ param: { name: "limit", in: "query" }, example: "50" }),
  cursor: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" } }),
});

const TaskRow = createSelectSchema(syncTasks);

export const JobSchema = TaskRow.pick({
  id: true,
  site_id: true,
  task_type: true,
  status: true,
  start_date: true,
  end_date: true,
  started_at: true,
  completed_at: true,
  error: true,
  total_records: true,
  attempts: true,
  max_attempts: true,
  worker_pid: true,
  heartbeat_at: true,
  created_at: true,
  run_at: true,
  scheduled_for: true,
  cancel_requested: true,
})
  .extend({
    site_name: z.string(),
    progress: z.number().int().min(0).max(100).openapi({ description: "Percent of the days done" }),
    total_tasks: z.number().int().openapi({ description: "Days the task covers" }),
    sync_mode: z.string().nullable(),
    stats: z.object({ synced: z.number().int(), failed: z.number().int(), skipped: z.number().int() }),
  })
  .openapi("SyncJob");
export type Job = z.infer<typeof JobSchema>;

export const JobListSchema = z.object({ total: z.number().int(), jobs: z.array(JobSchema) }).openapi("SyncJobList");

const Coverage = z.object({
  total_days: z.number().int(),
  latest_date: z.string().nullable(),
  oldest_date: z.string().nullable(),
});

export const DayCompletenessSchema = z
  .object({
    date: z.string().openapi({ example: "2026-11-20" }),
    search_type: z.enum(searchTypeCodes),
    data_state: z.enum(["final", "provisional"]),
    property_rows: z.number().int(),
    page_rows: z.number().int(),
    detail_rows: z.number().int(),
    appearance_rows: z.number().int(),
    page_truncated: z.boolean(),
    detail_truncated: z.boolean(),
    anonymized_share: z
      .number()
      .nullable()
      .openapi({ description: "Share of the day's clicks from queries Google does not name: 1 − Σ detail clicks / property clicks" }),
    derived: z.boolean(),
    fetched_at: z.string(),
  })
  .openapi("DayCompleteness");

/** A gsc_day_completeness row as the API shows it. */
export function toDayCompleteness(r: {
  day: number;
  type: number;
  data_state: string;
  property_rows: number;
  page_rows: number;
  detail_rows: number;
  appearance_rows: number;
  page_truncated: boolean;
  detail_truncated: boolean;
  anonymized_share: number | null;
  derived: boolean;
  fetched_at: string;
}): z.infer<typeof DayCompletenessSchema> {
  const { day, type, data_state, ...rest } = r;
  return {
    date: dayDate(day),
    search_type: searchTypeCodes[type - 1]!,
    data_state: data_state === "provisional" ? "provisional" : "final",
    ...rest,
    page_truncated: !!rest.page_truncated,
    detail_truncated: !!rest.detail_truncated,
    derived: !!rest.derived,
  };
}

const Totals = z.object({
  clicks: z.number().int(),
  impressions: z.number().int(),
  ctr: z.number().openapi({ description: "clicks / impressions" }),
  position: z.number().openapi({ description: "Impression-weighted average position" }),
});

export const CorrectionSchema = z
  .object({
    id: z.number().int(),
    date: z.string().openapi({ example: "2026-11-20" }),
    search_type: z.enum(searchTypeCodes),
    old: Totals.openapi({ description: "The day's property totals as stored before" }),
    new: Totals.openapi({ description: "The day's property totals as Search Console gave them again" }),
    detected_at: z.string(),
  })
  .openapi("Correction");

export const CorrectionListSchema = z
  .object({ site_id: z.number().int(), corrections: z.array(CorrectionSchema) })
  .openapi("CorrectionList");

export const CorrectionsQuery = z.object({
  limit: intParam(1, 500)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" }, example: "100" }),
  cursor: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" } }),
});

/** A gsc_corrections row as the API shows it. */
export function toCorrection(r: {
  id: number;
  day: number;
  type: number;
  old_clicks: number;
  old_impressions: number;
  old_sum_position: number;
  new_clicks: number;
  new_impressions: number;
  new_sum_position: number;
  detected_at: string;
}): z.infer<typeof CorrectionSchema> {
  const totals = (clicks: number, impressions: number, sp: number) => ({
    clicks,
    impressions,
    ctr: ctrOf(clicks, impressions),
    position: positionOf(sp, impressions),
  });
  return {
    id: Number(r.id),
    date: dayDate(r.day),
    search_type: searchTypeCodes[r.type - 1]!,
    old: totals(r.old_clicks, r.old_impressions, r.old_sum_position),
    new: totals(r.new_clicks, r.new_impressions, r.new_sum_position),
    detected_at: r.detected_at,
  };
}

export const SyncStatusSchema = z
  .object({
    site_id: z.number().int(),
    daily_data: Coverage.extend({
      total_days: z.number().int().openapi({ description: "Days with stored rows" }),
      final_days: z.number().int().openapi({ description: "Days with rows Search Console will no longer revise" }),
    }),
    hourly_data: Coverage.openapi({ description: "Days with hourly rows (hourly_rankings), by Search Console's (Pacific) day" }),
    completeness: z
      .object({
        day_types: z.number().int().openapi({ description: "(day, search type) pairs fetched at Search Console's grains" }),
        days: z.number().int().openapi({ description: "Days with at least one search type fetched at its grains" }),
        provisional: z.number().int().openapi({ description: "Of day_types: fetched while Search Console could still revise them" }),
        derived: z.number().int().openapi({ description: "Of day_types: totals summed from the old query rows, not fetched from Google" }),
        detail_truncated: z
          .number()
          .int()
          .openapi({ description: "Of day_types: query detail cut at Google's 50,000 rows per day and type" }),
        page_truncated: z.number().int().openapi({ description: "Of day_types: page totals cut at Google's 50,000 rows" }),
        last_fetched_at: z.string().nullable(),
        recent: z
          .array(DayCompletenessSchema)
          .openapi({ description: "The newest 7 days fetched, every search type, newest first (then by type)" }),
      })
      .openapi({ description: "How complete each stored day is (gsc_day_completeness; docs/design/grains.md)" }),
  })
  .openapi("SyncStatus");

/** The API shape of a task row: the row without its internal columns, plus the computed fields. */
export function toJob(r: JobRow): Job {
  const { params, progress_done, progress_total, stats_synced, stats_failed, stats_skipped, locked_until: _lease, ...row } = r;
  const done = r.status === "completed";
  const progress = progress_total > 0 ? Math.floor((100 * Math.min(progress_done, progress_total)) / progress_total) : done ? 100 : 0;
  const mode = (params as { sync_mode?: unknown }).sync_mode;
  return {
    ...row,
    progress,
    total_tasks: progress_total,
    stats: { synced: stats_synced, failed: stats_failed, skipped: stats_skipped },
    sync_mode: typeof mode === "string" ? mode : null,
  };
}

/** Encodes a job-list cursor (the last id shown). */
export function encodeJobCursor(id: number): string {
  return Buffer.from(String(id)).toString("base64url");
}

/** Decodes a job-list cursor; a malformed one is the client's mistake (400). */
export function decodeJobCursor(s: string): number {
  const id = Number(Buffer.from(s, "base64url").toString("utf8"));
  if (Number.isSafeInteger(id) && id > 0) return id;
  throw new ApiError("validation_failed", "invalid cursor", [{ path: "cursor", message: "not a cursor this API issued" }]);
}
