import { z } from "@hono/zod-openapi";
import { syncModes } from "../sync/handlers/days.ts";
import { DateString, intParam } from "../sync/schemas.ts";

// Request and response shapes of the original's analytics endpoints (reference §1.5-§1.7, §4),
// plus the raw-data export. Unknown body keys are ignored, as the original (Pydantic) did.

/** The original accepted `"4"` for an int (Pydantic lax mode); 0 and null mean "not given". */
const LaxId = z
  .union([
    z.number().int(),
    z
      .string()
      .regex(/^-?\d{1,15}$/, "expected an integer")
      .transform(Number),
  ])
  .nullish()
  .openapi({ type: "integer", example: 1 });

const Hostname = z.string().max(2048).nullish().openapi({ example: "example.com", description: "Host or property (see README)" });

export const SiteRefBody = z.object({ site_id: LaxId, hostname: Hostname });

const Terms = z.array(z.string().max(2048)).max(10_000).nullish();

/** `null`: no limit; absent: 1000; negative: drop that many from the end (the original's slice). */
const MaxResults = z.number().int().nullable().default(1000).openapi({ example: 1000 });

export const RankingDataRequest = SiteRefBody.extend({
  start_date: DateString,
  end_date: DateString,
  queries: Terms.openapi({ description: "Used when group_by is query; empty counts as absent" }),
  pages: Terms.openapi({ description: "Used when group_by is page; exact URLs" }),
  group_by: z.enum(["query", "page"]).default("query"),
  max_results: MaxResults,
  aggregation_mode: z.enum(["raw", "daily"]).nullable().default("raw"),
  matching_mode: z.enum(["exact", "partial"]).nullable().default("exact"),
}).openapi("RankingDataRequest");
export type RankingDataRequest = z.infer<typeof RankingDataRequest>;

export const RankingDataItem = z
  .object({
    date: z.string(),
    query: z.string().nullable(),
    page: z.string().nullable(),
    clicks: z.number().int(),
    impressions: z.number().int(),
    ctr: z.number().openapi({ description: "Fraction 0..1" }),
    position: z.number(),
  })
  .openapi("RankingDataItem");
export type RankingDataItem = z.infer<typeof RankingDataItem>;

export const RankingDataResponse = z
  .object({
    site_id: z.number().int(),
    start_date: z.string(),
    end_date: z.string(),
    group_by: z.string(),
    total_results: z.number().int(),
    data: z.array(RankingDataItem),
  })
  .openapi("RankingDataResponse");

const Days = z.number().int().min(0).max(100_000).nullish().openapi({ description: "Null or 0: all time" });

export const PageKeywordRequest = SiteRefBody.extend({
  days: Days,
  max_results: MaxResults.openapi({ description: "Pages returned (after the URL filter); null or 0: all" }),
  query: z.string().max(2048).nullish().openapi({ description: "Keep pages whose URL contains this text" }),
}).openapi("PageKeywordPerformanceRequest");
export type PageKeywordRequest = z.infer<typeof PageKeywordRequest>;

export const PageKeywordItem = z
  .object({
    url: z.string(),
    total_clicks: z.number().int(),
    total_impressions: z.number().int(),
    avg_ctr: z.number().openapi({ description: "Percent (mean of the rows' ctr x 100), 3 decimals" }),
    avg_position: z.number().openapi({ description: "Mean of the rows' position, 2 decimals" }),
    keywords: z.array(z.string()),
    keyword_count: z.number().int(),
  })
  .openapi("PageKeywordPerformanceItem");
export type PageKeywordItem = z.infer<typeof PageKeywordItem>;

export const PageKeywordResponse = z
  .object({
    site_id: z.number().int(),
    time_range: z.string(),
    total_results: z.number().int(),
    data: z.array(PageKeywordItem),
  })
  .openapi("PageKeywordPerformanceResponse");

/** A query-string site id: digits only; `0` means "not given", as in the original. */
const QueryId = z
  .string()
  .regex(/^\d{1,15}$/, "expected an integer")
  .transform(Number)
  .optional()
  .openapi({ param: { name: "site_id", in: "query" }, example: "1" });
const QueryHost = z
  .string()
  .max(2048)
  .optional()
  .openapi({ param: { name: "hostname", in: "query" } });

/** Flags of the CSV downloads: `1`/`true` on, `0`/`false` (or absent) off. */
const csvFlag = (name: string, description: string) =>
  z
    .enum(["0", "1", "true", "false"])
    .optional()
    .openapi({ param: { name, in: "query" }, description });
const csvFlags = {
  bom: csvFlag("bom", "CSV only: start with a UTF-8 byte order mark (Excel then reads non-Latin text right)"),
  raw: csvFlag(
    "raw",
    "CSV only: text cells exactly as stored; by default a cell starting with = + - @ tab or CR gets a leading ' (formula injection)",
  ),
};
/** Whether a csvFlag is on. */
export const flagOn = (v: string | undefined) => v === "1" || v === "true";

export const PageKeywordCsvQuery = z.object({
  site_id: QueryId,
  hostname: QueryHost,
  days: intParam(0, 100_000)
    .optional()
    .openapi({ param: { name: "days", in: "query" } }),
  query: z
    .string()
    .max(2048)
    .optional()
    .openapi({ param: { name: "query", in: "query" }, description: "URL substring filter" }),
  max_results: intParam(0, 1_000_000_000)
    .optional()
    .openapi({ param: { name: "max_results", in: "query" }, description: "Most pages; absent or 0: all" }),
  ...csvFlags,
});

export const TrendsQuery = z.object({
  site_id: QueryId,
  hostname: QueryHost,
  days: intParam(1, 100_000)
    .default(30)
    .openapi({ param: { name: "days", in: "query" }, example: "30" }),
});

export const TrendsResponse = z
  .object({
    data: z.array(
      z.object({
        date: z.string(),
        total_clicks: z.number(),
        total_impressions: z.number(),
        avg_position: z.number(),
        unique_queries: z.number().int(),
        clicks_7d_avg: z.number(),
        clicks_wow_change: z.number().nullable(),
        cumulative_clicks: z.number(),
      }),
    ),
    summary: z.object({ total_clicks: z.number().int(), avg_position: z.number(), unique_queries: z.number().int() }),
  })
  .openapi("PerformanceTrends");
export type TrendsResponse = z.infer<typeof TrendsResponse>;

export const CoverageQuery = z.object({
  site_id: QueryId,
  hostname: QueryHost,
  days: intParam(0, 1000)
    .default(30)
    .openapi({ param: { name: "days", in: "query" }, example: "30" }),
});

export const CoverageResponse = z
  .object({
    site_id: z.number().int(),
    site_name: z.string(),
    daily_coverage: z.record(z.string(), z.boolean()).openapi({ description: "One key per day, today-days..today (UTC)" }),
    hourly_coverage: z.record(z.string(), z.boolean()).openapi({ description: "Same days: whether hourly rows exist (v2 always sent {})" }),
    last_sync: z.string().nullable().openapi({ description: "When a day of this site was last stored completely" }),
    total_records: z.number().int().openapi({ description: "Days of the window that have rows (the original's name)" }),
  })
  .openapi("SyncCoverage");

export const TriggerBody = SiteRefBody.extend({
  days: z.number().int().min(1).max(480).default(7),
  sync_mode: z.enum(syncModes).default("skip"),
  force: z.boolean().default(false).openapi({ description: "Fetch days already synced again (overwrite)" }),
}).openapi("SyncTriggerRequest");

export const TriggerResponse = z
  .object({
    status: z.literal("queued"),
    job_id: z.number().int(),
    site_id: z.number().int(),
    days: z.number().int(),
    sync_mode: z.string(),
    force: z.boolean(),
    message: z.string(),
    status_url: z.string(),
  })
  .openapi("SyncTriggerQueued");

export const exportFormats = ["csv", "jsonl"] as const;

export const ExportQuery = z.object({
  format: z
    .enum(exportFormats)
    .default("csv")
    .openapi({ param: { name: "format", in: "query" } }),
  start_date: DateString.optional().openapi({ param: { name: "start_date", in: "query" } }),
  end_date: DateString.optional().openapi({ param: { name: "end_date", in: "query" } }),
  search_type: z
    .string()
    .min(1)
    .max(32)
    .optional()
    .openapi({ param: { name: "search_type", in: "query" }, example: "web" }),
  ...csvFlags,
});

/** Columns of the raw-data export, in order. */
export const exportColumns = ["date", "page", "query", "device", "search_type", "clicks", "impressions", "ctr", "position"] as const;
