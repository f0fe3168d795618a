import { z } from "@hono/zod-openapi";
import { intParam } from "../sync/schemas.ts";

const Contents = z.array(z.object({ type: z.string(), submitted: z.number().int() }));

const sitemapFields = {
  path: z.string().openapi({ example: "https://example.com/sitemap.xml" }),
  type: z.string().nullable().openapi({ description: "Search Console's sitemap type (sitemap, rssFeed, atomFeed, urlList, …)" }),
  last_submitted: z.string().nullable(),
  last_downloaded: z.string().nullable(),
  is_pending: z.boolean(),
  is_sitemaps_index: z.boolean(),
  warnings: z.number().int(),
  errors: z.number().int(),
  contents: Contents.openapi({ description: "URLs submitted per content type (web, image, video, news, …)" }),
};

export const SitemapSchema = z
  .object({
    site_id: z.number().int(),
    ...sitemapFields,
    first_seen_at: z.string(),
    checked_at: z.string().openapi({ description: "When a sitemaps sync last saw it (or saw it gone)" }),
    removed_at: z.string().nullable().openapi({ description: "Set once Search Console no longer lists it" }),
  })
  .openapi("Sitemap");

export const SitemapHistorySchema = z
  .object({
    id: z.number().int(),
    site_id: z.number().int(),
    ...sitemapFields,
    seen_at: z.string(),
    removed: z.boolean().openapi({ description: "This change is the sitemap's disappearance from Search Console's list" }),
  })
  .openapi("SitemapHistoryEntry");

export const SitemapsQuery = z.object({
  include_removed: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true")
    .openapi({ param: { name: "include_removed", in: "query" } }),
});

export const SitemapHistoryQuery = z.object({
  path: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .openapi({ param: { name: "path", in: "query" }, description: "One sitemap's history" }),
  limit: intParam(1, 1000)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" } }),
  before: intParam(1, 2 ** 31)
    .optional()
    .openapi({ param: { name: "before", in: "query" }, description: "Entries older than this id (paging)" }),
});
