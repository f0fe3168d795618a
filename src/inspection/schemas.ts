import { z } from "@hono/zod-openapi";
import { intParam } from "../sync/schemas.ts";
import { inspectionChoices } from "./queries.ts";

export const InspectionSchema = z
  .object({
    id: z.number().int(),
    site_id: z.number().int(),
    url: z.string(),
    inspected_at: z.string(),
    verdict: z.string().nullable().openapi({ description: "PASS, PARTIAL, FAIL, NEUTRAL" }),
    coverage_state: z.string().nullable().openapi({ example: "Submitted and indexed" }),
    indexing_state: z.string().nullable(),
    robots_txt_state: z.string().nullable(),
    page_fetch_state: z.string().nullable(),
    last_crawl_time: z.string().nullable(),
    crawled_as: z.string().nullable(),
    google_canonical: z.string().nullable(),
    user_canonical: z.string().nullable(),
    sitemaps: z.array(z.string()),
    referring_urls: z.array(z.string()),
    mobile_verdict: z.string().nullable(),
    rich_results_verdict: z.string().nullable(),
    inspection_link: z.string().nullable(),
    chosen_by: z.string().openapi({ description: "clicks, sitemap or request: why the page was inspected" }),
  })
  .openapi("UrlInspection");

export const IndexStatusQuery = z.object({
  verdict: z
    .string()
    .regex(/^[A-Z_]{1,40}$/, "expected a verdict such as PASS or FAIL")
    .optional()
    .openapi({ param: { name: "verdict", in: "query" } }),
  limit: intParam(1, 10_000)
    .default(1000)
    .openapi({ param: { name: "limit", in: "query" } }),
});

export const IndexHistoryQuery = z.object({
  url: z
    .string()
    .min(1)
    .max(2048)
    .openapi({ param: { name: "url", in: "query" } }),
  limit: intParam(1, 1000)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" } }),
});

export const InspectRequestSchema = z
  .object({
    by: z.enum(inspectionChoices).default("clicks").openapi({
      description: "clicks: the pages with the most clicks; sitemap: the URLs the site's sitemaps list; request: `urls`",
    }),
    urls: z.array(z.url().max(2048)).max(2000).default([]),
    limit: z.number().int().min(1).max(2000).default(50),
    days: z.number().int().min(1).max(480).default(28).openapi({ description: "Days of clicks ranking the pages (by clicks)" }),
    force: z.boolean().default(false).openapi({ description: "Inspect pages already inspected today too" }),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.by === "request" && v.urls.length === 0) ctx.addIssue({ code: "custom", path: ["urls"], message: "give urls with by=request" });
    if (v.by !== "request" && v.urls.length > 0) ctx.addIssue({ code: "custom", path: ["urls"], message: "urls go with by=request" });
  })
  .openapi("InspectRequest");
