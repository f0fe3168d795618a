import { createRoute, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { createRouter, errorResponses, jsonBody, setNextLink } from "../openapi.ts";
import {
  archiveSite,
  createSite,
  decodeCursor,
  encodeCursor,
  findSiteById,
  listSites,
  purgeSite,
  restoreSite,
  updateSite,
  siteNotFound,
} from "./queries.ts";
import { CreateSiteSchema, DeleteSiteQuery, ListSitesQuery, SiteIdParams, SiteSchema, UpdateSiteSchema } from "./schemas.ts";

/** The /api/v1/sites routes. */
export function sitesRoutes(db: Db) {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["sites"],
      summary: "List sites ordered by name then id",
      description:
        'A JSON array of every matching site; with `limit`, a page of them, and when more remain a `Link: <...>; rel="next"` header carries the next page.',
      request: { query: ListSitesQuery },
      responses: {
        200: { description: "A page of sites", content: { "application/json": { schema: z.array(SiteSchema) } } },
        ...errorResponses(400),
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await listSites(db, {
        activeOnly: q.active_only,
        limit: q.limit,
        cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
        includeArchived: q.include_archived,
      });
      if (page.next) setNextLink(c, encodeCursor(page.next));
      return c.json(page.items, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/",
      tags: ["sites"],
      summary: "Create a site",
      request: { body: jsonBody(CreateSiteSchema) },
      responses: {
        201: { description: "Created", content: { "application/json": { schema: SiteSchema } } },
        ...errorResponses(400, 409, 413, 415, 503),
      },
    }),
    async (c) => {
      const site = await createSite(db, c.req.valid("json"));
      c.header("Location", `/api/v1/sites/${site.id}`);
      return c.json(site, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags: ["sites"],
      summary: "Get one site",
      request: { params: SiteIdParams },
      responses: {
        200: { description: "The site", content: { "application/json": { schema: SiteSchema } } },
        ...errorResponses(400, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const site = await findSiteById(db, id);
      if (!site) throw siteNotFound(id);
      return c.json(site, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/{id}",
      tags: ["sites"],
      summary: "Change some fields of a site",
      request: { params: SiteIdParams, body: jsonBody(UpdateSiteSchema) },
      responses: {
        200: { description: "The updated site", content: { "application/json": { schema: SiteSchema } } },
        ...errorResponses(400, 404, 409, 413, 415, 503),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await updateSite(db, id, c.req.valid("json")), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      tags: ["sites"],
      summary: "Archive a site (or purge it for good with purge=true&confirm=<domain>)",
      description:
        "Archiving hides the site from lists, cancels its pending syncs and keeps all its data; `POST /{id}/restore` undoes it. " +
        "With `purge=true` and its domain repeated in `confirm`, the site, its sync tasks and its synced data are deleted for good.",
      request: { params: SiteIdParams, query: DeleteSiteQuery },
      responses: { 204: { description: "Archived (or purged)" }, ...errorResponses(400, 401, 403, 404, 503) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      if (q.purge) await purgeSite(db, id, q.confirm);
      else await archiveSite(db, id);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/restore",
      tags: ["sites"],
      summary: "Bring an archived site back",
      request: { params: SiteIdParams },
      responses: {
        200: { description: "The restored site", content: { "application/json": { schema: SiteSchema } } },
        ...errorResponses(400, 401, 403, 404, 503),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await restoreSite(db, id), 200);
    },
  );

  return app;
}
