import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { randomBytes } from "node:crypto";
import type { Db } from "../db/index.ts";
import type { AlertChannel } from "../db/model.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById, siteNotFound } from "../sites/queries.ts";
import { intParam } from "../sync/schemas.ts";
import {
  alertKinds,
  createChannel,
  deleteChannel,
  deleteRule,
  findChannel,
  listChannels,
  listDeliveries,
  listRules,
  raiseTestAlert,
  upsertRule,
} from "./queries.ts";

// The alerts API, mounted at /api/v1/alerts (admin: a channel makes this server send requests and mail).

const IdParam = z.object({
  id: z
    .string()
    .regex(/^[1-9]\d{0,15}$/, "expected a positive integer")
    .transform(Number)
    .openapi({ param: { name: "id", in: "path" } }),
});

const ChannelBody = z
  .object({
    kind: z.enum(["webhook", "email"]),
    target: z.string().min(3).max(2048).openapi({ description: "The webhook URL (http or https), or an e-mail address" }),
    secret: z.string().min(16).max(200).optional().openapi({ description: "Webhook HMAC key; generated (and shown once) when absent" }),
    events: z.array(z.enum(alertKinds)).max(alertKinds.length).default([]).openapi({ description: "Kinds it receives; empty: all" }),
    site_id: z.number().int().positive().nullable().default(null).openapi({ description: "Only this site's alerts; null: every site" }),
  })
  .superRefine((b, ctx) => {
    if (b.kind === "webhook" && !/^https?:\/\/[^\s/]+/i.test(b.target))
      ctx.addIssue({ code: "custom", path: ["target"], message: "expected an http(s) URL" });
    if (b.kind === "email" && !/^[^\s@]+@[^\s@]+$/.test(b.target))
      ctx.addIssue({ code: "custom", path: ["target"], message: "expected an e-mail address" });
  })
  .openapi("AlertChannelCreate");

const ChannelSchema = z
  .object({
    id: z.number().int(),
    kind: z.string(),
    target: z.string(),
    has_secret: z.boolean(),
    events: z.array(z.string()),
    site_id: z.number().int().nullable(),
    active: z.boolean(),
    created_at: z.string(),
  })
  .openapi("AlertChannel");

const RuleBody = z
  .object({
    site_id: z.number().int().positive(),
    scope: z.enum(["site", "page"]).default("site").openapi({ description: "The site's clicks, or each page's" }),
    drop_share: z
      .number()
      .gt(0)
      .lt(1)
      .openapi({ description: "Alert when clicks of the last 7 days fell more than this share below the 7 before (0.3 = 30%)" }),
    min_clicks: z.number().int().min(1).default(50).openapi({ description: "Only when the 7 days before had at least this many clicks" }),
  })
  .openapi("AlertRule");

/** A channel as the API shows it: never its secret. */
function shown(c: AlertChannel) {
  const { secret, ...rest } = c;
  return { ...rest, has_secret: secret !== null, events: c.events as string[] };
}

/** The alert routes (channels, rules, the delivery log, a test alert). */
export function alertsRoutes(db: Db) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/channels",
      tags: ["alerts"],
      summary: "Alert channels (webhooks, e-mail)",
      responses: { 200: jsonResponse(z.array(ChannelSchema), "Channels") },
    }),
    async (c) => c.json((await listChannels(db)).map(shown), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/channels",
      tags: ["alerts"],
      summary: "Add a webhook or e-mail channel",
      description:
        "Webhooks get a JSON POST with `X-Sitesync-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>`; the secret is returned once, here.",
      request: { body: jsonBody(ChannelBody) },
      responses: {
        201: jsonResponse(ChannelSchema.extend({ secret: z.string().nullable() }), "Added"),
        ...errorResponses(400, 404, 413, 415),
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      if (b.site_id !== null && !(await findSiteById(db, b.site_id))) throw siteNotFound(b.site_id);
      const secret = b.kind === "webhook" ? (b.secret ?? randomBytes(24).toString("hex")) : null;
      const ch = await createChannel(db, { kind: b.kind, target: b.target, secret, events: b.events, site_id: b.site_id });
      return c.json({ ...shown(ch), secret }, 201);
    },
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/channels/{id}",
      tags: ["alerts"],
      summary: "Remove a channel (and its deliveries)",
      request: { params: IdParam },
      responses: { 204: { description: "Removed" }, ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!(await deleteChannel(db, id))) throw new ApiError("not_found", `alert channel ${id} not found`);
      return c.body(null, 204);
    },
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/channels/{id}/test",
      tags: ["alerts"],
      summary: "Queue a test alert to one channel (delivered by the next pass, within ALERT_POLL_MS)",
      request: { params: IdParam },
      responses: { 202: jsonResponse(z.object({ event_id: z.number().int() }), "Queued"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const ch = await findChannel(db, id);
      if (!ch) throw new ApiError("not_found", `alert channel ${id} not found`);
      // A one-off event only this channel takes: raised with its own key, delivered like any other.
      const eventId = await raiseTestAlert(db, ch);
      return c.json({ event_id: eventId }, 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rules",
      tags: ["alerts"],
      summary: "Click-drop rules (per site)",
      request: {
        query: z.object({
          site_id: intParam(1, Number.MAX_SAFE_INTEGER)
            .optional()
            .openapi({ param: { name: "site_id", in: "query" } }),
        }),
      },
      responses: {
        200: jsonResponse(z.array(RuleBody.extend({ id: z.number().int(), created_at: z.string() })), "Rules"),
        ...errorResponses(400),
      },
    }),
    async (c) => c.json(await listRules(db, c.req.valid("query").site_id), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/rules",
      tags: ["alerts"],
      summary: "Set a site's click-drop rule (one per site and scope; a second replaces the first)",
      request: { body: jsonBody(RuleBody) },
      responses: {
        201: jsonResponse(RuleBody.extend({ id: z.number().int(), created_at: z.string() }), "Set"),
        ...errorResponses(400, 404, 413, 415),
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      if (!(await findSiteById(db, b.site_id))) throw siteNotFound(b.site_id);
      return c.json(await upsertRule(db, b), 201);
    },
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/rules/{id}",
      tags: ["alerts"],
      summary: "Remove a rule",
      request: { params: IdParam },
      responses: { 204: { description: "Removed" }, ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!(await deleteRule(db, id))) throw new ApiError("not_found", `alert rule ${id} not found`);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/deliveries",
      tags: ["alerts"],
      summary: "The delivery log, newest first: status (pending, delivered, failed), attempts, last HTTP status and error",
      request: {
        query: z.object({
          limit: intParam(1, 500)
            .default(50)
            .openapi({ param: { name: "limit", in: "query" } }),
          site_id: intParam(1, Number.MAX_SAFE_INTEGER)
            .optional()
            .openapi({ param: { name: "site_id", in: "query" } }),
        }),
      },
      responses: { 200: jsonResponse(z.array(z.object({}).passthrough()), "Deliveries"), ...errorResponses(400) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await listDeliveries(db, q.limit, q.site_id), 200);
    },
  );
  return app;
}
