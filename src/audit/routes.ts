import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import type { Db } from "../db/index.ts";
import { auditLog } from "../db/sqlite/schema.ts";
import { errorResponses, jsonResponse, setNextLink, validationHook } from "../openapi.ts";
import { intParam } from "../sync/schemas.ts";
import { listAudit } from "./queries.ts";

const AuditEntrySchema = createSelectSchema(auditLog).openapi("AuditEntry");
const AuditPageSchema = z.object({ entries: z.array(AuditEntrySchema), next_cursor: z.string().nullable() }).openapi("AuditPage");

const idParam = (name: string) =>
  z
    .string()
    .regex(/^[1-9]\d{0,15}$/, "expected a positive integer")
    .transform(Number)
    .optional()
    .openapi({ param: { name, in: "query" } });
const timeParam = (name: string) =>
  z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v).toISOString())
    .optional()
    .openapi({ param: { name, in: "query" }, example: "2026-11-25T00:00:00Z" });

const AuditQuery = z.object({
  key_id: idParam("key_id"),
  site_id: idParam("site_id"),
  actor: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .openapi({ param: { name: "actor", in: "query" }, description: "Key name, `loopback` or `anonymous`" }),
  outcome: z
    .enum(["ok", "denied", "failed"])
    .optional()
    .openapi({ param: { name: "outcome", in: "query" } }),
  since: timeParam("since"),
  until: timeParam("until"),
  limit: intParam(1, 500)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" }, example: "100" }),
  cursor: idParam("cursor"),
});

/** GET /api/v1/audit (admin scope, see auth/policy.ts). */
export function auditRoutes(db: Db) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["audit"],
      summary: "The audit log of API writes, newest first",
      description:
        'Each write is recorded in the transaction of the change it made (outcome `ok`); refused or failed writes afterwards (`denied`, `failed`, with `status`). When more remain, `next_cursor` and a `Link: <...>; rel="next"` header carry the next page.',
      request: { query: AuditQuery },
      responses: { 200: jsonResponse(AuditPageSchema, "Audit entries"), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await listAudit(db, {
        keyId: q.key_id,
        siteId: q.site_id,
        actor: q.actor,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
        limit: q.limit,
        before: q.cursor,
      });
      const next = page.next === null ? null : String(page.next);
      if (next !== null) setNextLink(c, next);
      return c.json({ entries: page.entries, next_cursor: next }, 200);
    },
  );
  return app;
}
