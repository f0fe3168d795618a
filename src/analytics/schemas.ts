import { z } from "@hono/zod-openapi";
import { searchTypeCodes, type SearchTypeCode } from "../db/enums.ts";
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
  search_type: z
    .enum(searchTypeCodes)
    .nullish()
    .openapi({ description: "One search type (discover and googleNews have no query rows: 400); absent: every stored type" }),
  device: z.enum(["DESKTOP", "MOBILE", "TABLET", "desktop", "mobile", "tablet"]).nullish(),
  country: z
    .string()
    .nullish()
    .openapi({ description: "Refused (400): the query detail these rows come from stores no country; use performance-trends" }),
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
  search_type: z.enum(searchTypeCodes).default("web").openapi({ description: "Search Console search type (default web)" }),
  device: z.enum(["DESKTOP", "MOBILE", "TABLET", "desktop", "mobile", "tablet"]).nullish(),
}).openapi("PageKeywordPerformanceRequest");
export type PageKeywordRequest = z.infer<typeof PageKeywordRequest>;

export const PageKeywordItem = z
  .object({
    url: z.string(),
    total_clicks: z.number().int(),
    total_impressions: z.number().int(),
    avg_ctr: z.number().openapi({ description: "Percent: Σclicks / Σimpressions × 100 (page totals), 3 decimals" }),
    avg_position: z.number().openapi({ description: "Impression-weighted position (page totals), 2 decimals" }),
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

/** Search Console filters as query parameters: which grain rows a total reads (docs/analytics.md). */
export const grainFilterParams = {
  search_type: z
    .enum(searchTypeCodes)
    .default("web")
    .openapi({ param: { name: "search_type", in: "query" }, description: "Search Console search type (default web)" }),
  country: z
    .string()
    .regex(/^[a-z]{3}$/, "an ISO 3166-1 alpha-3 code, lower case (e.g. usa)")
    .optional()
    .openapi({
      param: { name: "country", in: "query" },
      description: "Property and page totals only (the query detail stores no country)",
    }),
  device: z
    .enum(["DESKTOP", "MOBILE", "TABLET", "desktop", "mobile", "tablet"])
    .optional()
    .openapi({ param: { name: "device", in: "query" } }),
  search_appearance: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .openapi({
      param: { name: "search_appearance", in: "query" },
      description: "One searchAppearance value: property totals only, alone (no country or device)",
    }),
};

/** The grain filters of a request (see grainFilterParams). */
export function grainFiltersOf(q: { search_type: SearchTypeCode; country?: string; device?: string; search_appearance?: string }) {
  return { searchType: q.search_type, country: q.country ?? null, device: q.device ?? null, appearance: q.search_appearance ?? null };
}

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
  search_type: grainFilterParams.search_type,
  device: grainFilterParams.device,
  ...csvFlags,
});

export const TrendsQuery = z.object({
  site_id: QueryId,
  hostname: QueryHost,
  days: intParam(1, 100_000)
    .default(30)
    .openapi({ param: { name: "days", in: "query" }, example: "30" }),
  ...grainFilterParams,
});

export const TrendsResponse = z
  .object({
    data: z.array(
      z.object({
        date: z.string(),
        total_clicks: z.number(),
        total_impressions: z.number(),
        avg_position: z.number(),
        unique_queries: z
          .number()
          .int()
          .nullable()
          .openapi({ description: "Named queries that day (query detail); null under a country or appearance filter" }),
        clicks_7d_avg: z.number(),
        clicks_wow_change: z.number().nullable(),
        cumulative_clicks: z.number(),
        ctr: z.number().openapi({ description: "Σclicks / Σimpressions (fraction)" }),
        derived: z.boolean().openapi({
          description: "Summed from the query detail: no property totals stored for that day (under-counts anonymized queries)",
        }),
      }),
    ),
    summary: z.object({
      total_clicks: z.number().int(),
      avg_position: z.number().openapi({ description: "Impression-weighted: Σsum_position / Σimpressions" }),
      unique_queries: z.number().int().nullable(),
      total_impressions: z.number().int(),
      ctr: z.number(),
      anonymized_clicks_share: z
        .number()
        .nullable()
        .openapi({ description: "Share of clicks from queries Google does not name (0..1); null when unknown" }),
      derived_days: z.number().int(),
      search_type: z.string(),
    }),
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

export const exportFormats = ["csv", "jsonl", "parquet"] as const;

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
