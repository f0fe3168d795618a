import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { dayOf } from "../sync/dates.ts";
import { createTask } from "../sync/queries.ts";
import { TaskCreatedSchema } from "../sync/schemas.ts";
import { listSitemapHistory, listSitemaps } from "./queries.ts";
import { SitemapHistoryQuery, SitemapSchema, SitemapsQuery, SitemapHistorySchema } from "./schemas.ts";

/** The /api/v1/sites/{id}/sitemaps routes: stored sitemaps, their history, and a sync on demand. */
export function sitemapsRoutes(db: Db, opts: { maxAttempts: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  const siteOr404 = async (id: number) => {
    const site = await findSiteById(db, id);
    if (!site) throw siteNotFound(id);
    return site;
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/sitemaps",
      tags: ["sitemaps"],
      summary: "The site's sitemaps as Search Console last listed them",
      description:
        "Stored by `sitemaps_sync` tasks (scheduled daily, or `POST …/sitemaps/sync`); `include_removed=true` adds those no longer listed.",
      request: { params: SiteIdParams, query: SitemapsQuery },
      responses: { 200: jsonResponse(z.array(SitemapSchema), "Sitemaps by path"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      await siteOr404(id);
      return c.json(await listSitemaps(db, id, { current: !c.req.valid("query").include_removed }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/sitemaps/history",
      tags: ["sitemaps"],
      summary: "Each change of the site's sitemaps (submitted, downloaded, errors, warnings, contents), newest first",
      request: { params: SiteIdParams, query: SitemapHistoryQuery },
      responses: { 200: jsonResponse(z.array(SitemapHistorySchema), "History entries"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      await siteOr404(id);
      const q = c.req.valid("query");
      return c.json(await listSitemapHistory(db, id, { path: q.path, limit: q.limit, before: q.before }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/sitemaps/sync",
      tags: ["sitemaps"],
      summary: "Queue a sitemaps_sync of the site now",
      request: { params: SiteIdParams },
      responses: { 202: jsonResponse(TaskCreatedSchema, "Queued"), ...errorResponses(404, 409) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const today = dayOf(new Date());
      const task = await createTask(db, {
        siteId: id,
        taskType: "sitemaps_sync",
        startDate: today,
        endDate: today,
        params: {},
        runAt: new Date(),
        maxAttempts: opts.maxAttempts,
      });
      c.header("Location", `/api/v1/sync/job/${task.id}`);
      return c.json({ job_id: task.id, message: `sitemaps_sync of site ${id} queued`, status_url: `/api/v1/sync/job/${task.id}` }, 202);
    },
  );

  return app;
}
