import { z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import { gscPerformanceData } from "../db/schema.ts";
import { DateString, intParam } from "../sync/schemas.ts";

export { SiteIdParam } from "../sync/schemas.ts";

export const SearchQuery = z.object({
  search_term: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .openapi({ param: { name: "search_term", in: "query" }, example: "running", description: "Matched anywhere in the query, ignoring ASCII case" }),
  start_date: DateString.optional().openapi({ param: { name: "start_date", in: "query" } }),
  end_date: DateString.optional().openapi({ param: { name: "end_date", in: "query" } }),
  limit: intParam(1, 1000)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" }, example: "100" }),
});

const Row = createSelectSchema(gscPerformanceData);

export const QueryStatsSchema = Row.pick({ query: true }).extend({
  total_clicks: z.number().int(),
  total_impressions: z.number().int(),
  avg_ctr: z.number(),
  avg_position: z.number(),
  days_appeared: z.number().int(),
});
export type QueryStats = z.infer<typeof QueryStatsSchema>;

export const SearchResultSchema = z
  .object({
    site_id: z.number().int(),
    search_term: z.string(),
    date_range: z.object({ start_date: z.string().nullable(), end_date: z.string().nullable() }),
    total_queries_found: z.number().int(),
    queries: z.array(QueryStatsSchema),
  })
  .openapi("QuerySearchResult");
