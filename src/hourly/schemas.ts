import { z } from "@hono/zod-openapi";
import { DateString } from "../sync/schemas.ts";

export const groupBys = ["query", "page"] as const;

export const HourlyRankingRequestSchema = z
  .object({
    site_id: z.number().int().positive().nullish().openapi({ description: "The site; or give hostname" }),
    hostname: z
      .string()
      .trim()
      .min(1)
      .max(2048)
      .nullish()
      .openapi({ example: "example.com", description: "Resolved like ranking-data's hostname" }),
    start_date: DateString.openapi({ description: "First day (Search Console's Pacific day), inclusive" }),
    end_date: DateString.openapi({ description: "Last day, inclusive" }),
    queries: z.array(z.string().min(1).max(500)).max(1000).nullish().openapi({ description: "Only these queries (group_by query)" }),
    pages: z.array(z.string().min(1).max(2048)).max(1000).nullish().openapi({ description: "Only these pages, exact (group_by page)" }),
    group_by: z.enum(groupBys).default("query"),
    matching_mode: z
      .enum(["exact", "partial"])
      .default("exact")
      .openapi({ description: "partial: a query matches when it contains a term" }),
    max_results: z.number().int().min(1).max(10_000).default(1000),
  })
  .strict()
  .refine((b) => b.site_id != null || b.hostname != null, { message: "give site_id or hostname", path: ["site_id"] })
  .refine((b) => b.start_date <= b.end_date, { message: "start_date is after end_date", path: ["start_date"] })
  .openapi("HourlyRankingRequest");
export type HourlyRankingRequest = z.infer<typeof HourlyRankingRequestSchema>;

export const HourlyRankingItemSchema = z
  .object({
    datetime: z.string().openapi({ example: "2026-11-20 03:00", description: "`YYYY-MM-DD HH:00` in Search Console's (Pacific) time" }),
    hour_timestamp: z.string().openapi({ example: "2026-11-20T03:00:00-08:00" }),
    date: z.string(),
    hour: z.number().int().min(0).max(23),
    query: z.string().nullable(),
    page: z.string().nullable(),
    clicks: z.number().int(),
    impressions: z.number().int(),
    ctr: z.number().openapi({ description: "clicks / impressions (fraction)" }),
    position: z.number().openapi({ description: "Average position weighted by impressions" }),
  })
  .openapi("HourlyRankingItem");
export type HourlyRankingItem = z.infer<typeof HourlyRankingItemSchema>;

export const HourlyRankingResponseSchema = z
  .object({
    site_id: z.number().int(),
    start_date: z.string(),
    end_date: z.string(),
    group_by: z.enum(groupBys),
    total_results: z.number().int(),
    data: z.array(HourlyRankingItemSchema),
  })
  .openapi("HourlyRankingResponse");
