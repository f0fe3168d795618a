import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { resolveSite } from "../sites/resolve.ts";
import { findHourlyRankings } from "./queries.ts";
import { HourlyRankingRequestSchema, HourlyRankingResponseSchema } from "./schemas.ts";

/** The hourly data routes, mounted at /api/v1/analytics. */
export function hourlyRoutes(db: Db) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "post",
      path: "/ranking-data-hourly",
      tags: ["analytics"],
      summary: "Hourly clicks, impressions, ctr and position per query (or page) from the synced hourly data",
      description:
        "Same request style as ranking-data, in hour buckets of Search Console's (Pacific) time. Only the days an hourly_sync stored are there (Google keeps about 10).",
      request: { body: jsonBody(HourlyRankingRequestSchema) },
      responses: {
        200: jsonResponse(HourlyRankingResponseSchema, "Hour buckets, oldest first"),
        ...errorResponses(400, 404, 413, 415),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { id: siteId } = await resolveSite(db, body);
      const data = await findHourlyRankings(db, { ...body, siteId, limit: body.max_results });
      return c.json(
        {
          site_id: siteId,
          start_date: body.start_date,
          end_date: body.end_date,
          group_by: body.group_by,
          total_results: data.length,
          data,
        },
        200,
      );
    },
  );

  return app;
}
