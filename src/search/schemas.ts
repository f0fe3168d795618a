import { z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import { gscPerformanceData } from "../db/sqlite/schema.ts";
import { DateString, intParam } from "../sync/schemas.ts";
import { CONTROL_CHARACTERS } from "../db/sql.ts";

export { SiteIdParam } from "../sync/schemas.ts";

export const SearchQuery = z.object({
  search_term: z
    .string()
    .trim()
    .min(1)
    .max(200)
    // 400, never a silent match-all: see CONTROL_CHARACTERS.
    .refine((s) => !CONTROL_CHARACTERS.test(s), "must not contain control characters (such as NUL, %00)")
    .openapi({
      param: { name: "search_term", in: "query" },
      example: "running",
      description: "Matched anywhere in the query, ignoring ASCII case; `%` and `_` are literal. No control characters.",
    }),
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
    date_range: z.string().openapi({
      description: "`<start> to <end>` as the original; an omitted bound is the site's oldest/newest day with rows",
      example: "2026-03-01 to 2026-03-31",
    }),
    start_date: z.string().nullable().openapi({ description: "start_date as sent (null: not sent)" }),
    end_date: z.string().nullable().openapi({ description: "end_date as sent (null: not sent)" }),
    total_queries_found: z.number().int().openapi({ description: "Queries returned (after limit), as the original" }),
    total_matches: z.number().int().openapi({ description: "Every matching query, before limit" }),
    queries: z.array(QueryStatsSchema),
  })
  .openapi("QuerySearchResult");
