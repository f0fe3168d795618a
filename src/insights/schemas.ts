import { z } from "@hono/zod-openapi";
import { DateString, intParam } from "../sync/schemas.ts";

// Query parameters of the insight endpoints (GET /api/v1/sites/{id}/insights/...).

const q = (name: string) => ({ param: { name, in: "query" as const } });

/** A share 0..1 as a query parameter (`0.25`). */
const shareParam = z
  .string()
  .regex(/^(0(\.\d{1,6})?|1(\.0{1,6})?)$/, "expected a share between 0 and 1, e.g. 0.25")
  .transform(Number);

export const WindowQuery = z.object({
  start: DateString.optional().openapi({ ...q("start"), description: "First day (default: end minus days-1)" }),
  end: DateString.optional().openapi({ ...q("end"), description: "Last day (default: the newest day with data)" }),
  days: intParam(1, 486)
    .optional()
    .openapi({ ...q("days"), description: "Window length when start is not given (default 28)" }),
  search_type: z
    .enum(["web", "image", "video", "news", "discover", "googleNews"])
    .optional()
    .openapi({ ...q("search_type"), description: "Default web" }),
  device: z
    .enum(["DESKTOP", "MOBILE", "TABLET"])
    .optional()
    .openapi({ ...q("device"), description: "Only this device" }),
  country: z
    .string()
    .regex(/^[a-z]{3}$/, "an ISO 3166-1 alpha-3 code, lower case (e.g. usa)")
    .optional()
    .openapi({
      ...q("country"),
      description: "Only this country: totals and pages (the query detail has no country: 400 for query reports)",
    }),
});

export const TopQuery = WindowQuery.extend({
  by: z.enum(["query", "page"]).default("query").openapi(q("by")),
  order: z.enum(["clicks", "impressions"]).default("clicks").openapi(q("order")),
  contains: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ ...q("contains"), description: "Only keys containing this (case-insensitive)" }),
  limit: intParam(1, 1000).default(50).openapi(q("limit")),
});

export const CompareQuery = z.object({
  by: z.enum(["query", "page"]).default("page").openapi(q("by")),
  current_start: DateString.optional().openapi(q("current_start")),
  current_end: DateString.optional().openapi({ ...q("current_end"), description: "Default: the newest day with data" }),
  previous_start: DateString.optional().openapi(q("previous_start")),
  previous_end: DateString.optional().openapi(q("previous_end")),
  days: intParam(1, 243)
    .default(28)
    .openapi({ ...q("days"), description: "Length of each period when not given (default 28 vs the 28 before)" }),
  search_type: WindowQuery.shape.search_type,
  device: WindowQuery.shape.device,
  country: WindowQuery.shape.country,
  limit: intParam(1, 500).default(20).openapi(q("limit")),
});

export const DecayQuery = z.object({
  end: WindowQuery.shape.end,
  weeks: intParam(2, 26)
    .default(8)
    .openapi({ ...q("weeks"), description: "Whole weeks ending at end (default 8)" }),
  min_drop: shareParam
    .default(0.2)
    .openapi({ ...q("min_drop"), type: "string", description: "Last week at least this share below the first (default 0.2)" }),
  min_clicks: intParam(1, 1_000_000)
    .default(10)
    .openapi({ ...q("min_clicks"), description: "First-week clicks at least (default 10)" }),
  search_type: WindowQuery.shape.search_type,
  device: WindowQuery.shape.device,
  country: WindowQuery.shape.country,
  limit: intParam(1, 500).default(50).openapi(q("limit")),
});

export const CannibalizationQuery = WindowQuery.extend({
  min_share: shareParam.default(0.1).openapi({
    ...q("min_share"),
    type: "string",
    description: "Each competing page has at least this share of the query's impressions (0.1)",
  }),
  min_impressions: intParam(1, 100_000_000).default(50).openapi(q("min_impressions")),
  limit: intParam(1, 500).default(50).openapi(q("limit")),
});

export const IndexInsightQuery = WindowQuery.extend({
  limit: intParam(1, 1000)
    .default(50)
    .openapi({ ...q("limit"), description: "Not-passing pages listed, most clicks first (default 50)" }),
});

export const BrandTermsBody = z
  .object({ terms: z.array(z.string().trim().min(2).max(100)).max(100) })
  .openapi("BrandTerms", { description: "A query containing any term (case-insensitive) is a brand query" });

const Metrics = {
  clicks: z.number().int(),
  impressions: z.number().int(),
  ctr: z.number().nullable().openapi({ description: "Σclicks / Σimpressions (fraction, 4 decimals)" }),
  position: z.number().nullable().openapi({ description: "Impression-weighted mean position (2 decimals)" }),
};
export const MetricsSchema = z.object(Metrics);

export const OverviewSchema = z
  .object({
    ...Metrics,
    queries: z.number().int().nullable().openapi({ description: "Named queries (query detail); null under a country filter" }),
    pages: z.number().int().openapi({ description: "Pages with clicks or impressions (page totals)" }),
    days: z.number().int(),
    days_with_data: z.number().int(),
    derived_days: z
      .number()
      .int()
      .openapi({ description: "Days summed from the query detail: no property totals stored for them (under-count anonymized queries)" }),
    anonymized_clicks_share: z.number().nullable().openapi({
      description: "Share of clicks from queries Google does not name (0..1), over the days with property totals; null when unknown",
    }),
    trend: z
      .array(z.object({ date: z.string(), ...Metrics, derived: z.boolean() }))
      .openapi({ description: "Days without data are absent (gaps)" }),
  })
  .openapi("InsightOverview");

/** The window an answer covers, echoed first. */
export const WindowSchema = z.object({
  site_id: z.number().int(),
  start: z.string(),
  end: z.string(),
  search_type: z.string(),
  device: z.string().nullable(),
  country: z.string().nullable(),
});
