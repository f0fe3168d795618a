import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "./queries.ts";
import { CreatedKeySchema, CreateKeySchema, KeyIdParams, KeySchema } from "./schemas.ts";

/** The /api/v1/keys routes (admin scope, see policy.ts). */
export function keysRoutes(db: Db) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "post",
      path: "/",
      tags: ["keys"],
      summary: "Create an API key (the key is in this response only)",
      request: { body: jsonBody(CreateKeySchema) },
      responses: { 201: jsonResponse(CreatedKeySchema, "Created"), ...errorResponses(400, 401, 403, 413, 415) },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const expiresAt = body.expires_in === undefined ? null : new Date(Date.now() + body.expires_in);
      const { key, info } = await createApiKey(db, { name: body.name, scope: body.scope, expiresAt });
      c.header("Cache-Control", "no-store");
      return c.json({ ...info, key }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["keys"],
      summary: "List API keys (never the keys themselves)",
      responses: { 200: jsonResponse(z.array(KeySchema), "Keys, newest first"), ...errorResponses(401, 403) },
    }),
    async (c) => c.json(await listApiKeys(db), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      tags: ["keys"],
      summary: "Revoke an API key (every worker refuses it from its next request)",
      request: { params: KeyIdParams },
      responses: { 200: jsonResponse(KeySchema, "The revoked key"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => c.json(await revokeApiKey(db, c.req.valid("param").id), 200),
  );

  return app;
}
