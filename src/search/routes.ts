import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, validationHook } from "../openapi.ts";
import { siteNotFound } from "../sites/queries.ts";
import { siteExists } from "../sync/queries.ts";
import { findDataBounds, searchQueries } from "./queries.ts";
import { SearchQuery, SearchResultSchema, SiteIdParam } from "./schemas.ts";
import { defaultBounds, heavyRequest, type Bounds } from "../analytics/bounds.ts";

/** The synced-data search routes, mounted at /api/v1. */
export function searchRoutes(db: Db, bounds: Bounds = defaultBounds) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.use("/sites/:site_id/queries/search", heavyRequest(bounds));

  app.openapi(
    createRoute({
      method: "get",
      path: "/sites/{site_id}/queries/search",
      tags: ["search"],
      summary: "Search a site's synced queries by partial match",
      description:
        "Totals per query over the date range (all dates when omitted), most impressions first (ties by query). Terms of 3+ characters use the trigram index of the site's distinct queries; shorter ones scan that list.",
      request: { params: SiteIdParam, query: SearchQuery },
      responses: {
        200: { description: "Matching queries", content: { "application/json": { schema: SearchResultSchema } } },
        ...errorResponses(400, 404, 429, 504),
      },
    }),
    async (c) => {
      const { site_id } = c.req.valid("param");
      const q = c.req.valid("query");
      if (q.start_date && q.end_date && q.start_date > q.end_date) {
        throw new ApiError("validation_failed", "invalid query: start_date is after end_date", [
          { path: "start_date", message: "start_date is after end_date" },
        ]);
      }
      if (!(await siteExists(db, site_id))) throw siteNotFound(site_id);
      const found = await searchQueries(db, {
        siteId: site_id,
        term: q.search_term,
        startDate: q.start_date ?? null,
        endDate: q.end_date ?? null,
        limit: q.limit,
      });
      // The original required both dates; when one is omitted the range is the site's data, so say which.
      const bounds = q.start_date && q.end_date ? null : await findDataBounds(db, site_id);
      const from = q.start_date ?? bounds?.oldest ?? "none";
      const to = q.end_date ?? bounds?.latest ?? "none";
      return c.json(
        {
          site_id,
          search_term: q.search_term,
          date_range: `${from} to ${to}`,
          start_date: q.start_date ?? null,
          end_date: q.end_date ?? null,
          total_queries_found: found.queries.length,
          total_matches: found.total,
          queries: found.queries,
        },
        200,
      );
    },
  );

  return app;
}
