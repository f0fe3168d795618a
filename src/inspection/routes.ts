import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { dayOf } from "../sync/dates.ts";
import { createTask } from "../sync/queries.ts";
import { TaskCreatedSchema } from "../sync/schemas.ts";
import { listInspectionHistory, listLatestInspections } from "./queries.ts";
import { IndexHistoryQuery, IndexStatusQuery, InspectionSchema, InspectRequestSchema } from "./schemas.ts";

/** The /api/v1/sites/{id}/index-status and …/inspections routes: URL inspection results and inspections on demand. */
export function inspectionRoutes(db: Db, opts: { maxAttempts: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  const siteOr404 = async (id: number) => {
    const site = await findSiteById(db, id);
    if (!site) throw siteNotFound(id);
    return site;
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/index-status",
      tags: ["inspection"],
      summary: "Each inspected page's latest index status (URL inspection), by URL",
      request: { params: SiteIdParams, query: IndexStatusQuery },
      responses: { 200: jsonResponse(z.array(InspectionSchema), "The newest inspection of each page"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      await siteOr404(id);
      const q = c.req.valid("query");
      return c.json(await listLatestInspections(db, id, { limit: q.limit, verdict: q.verdict }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/index-status/history",
      tags: ["inspection"],
      summary: "One page's inspections over time, newest first",
      request: { params: SiteIdParams, query: IndexHistoryQuery },
      responses: { 200: jsonResponse(z.array(InspectionSchema), "Inspections of the page"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      await siteOr404(id);
      const q = c.req.valid("query");
      return c.json(await listInspectionHistory(db, id, q.url, q.limit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/inspections",
      tags: ["inspection"],
      summary: "Queue a url_inspection of pages chosen by clicks, by sitemap, or given",
      description:
        "Runs within the property's URL inspection quota (GSC_INSPECT_PER_MINUTE / GSC_INSPECT_PER_DAY, shared by every process and host); pages inspected today are skipped unless `force`.",
      request: { params: SiteIdParams, body: jsonBody(InspectRequestSchema) },
      responses: { 202: jsonResponse(TaskCreatedSchema, "Queued"), ...errorResponses(400, 404, 409, 413, 415) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const today = dayOf(new Date());
      const task = await createTask(db, {
        siteId: id,
        taskType: "url_inspection",
        startDate: today,
        endDate: today,
        params: body,
        runAt: new Date(),
        maxAttempts: opts.maxAttempts,
      });
      c.header("Location", `/api/v1/sync/job/${task.id}`);
      const what = body.by === "request" ? `${body.urls.length} URL(s)` : `up to ${body.limit} pages by ${body.by}`;
      return c.json(
        { job_id: task.id, message: `url_inspection of ${what} of site ${id} queued`, status_url: `/api/v1/sync/job/${task.id}` },
        202,
      );
    },
  );

  return app;
}
