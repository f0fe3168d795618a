import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { raceWithPending, withRideThrough } from "../db/availability.ts";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";
import { errorResponses, jsonBody, jsonResponse, validationHook } from "../openapi.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "./queries.ts";
import { CreatedKeySchema, CreateKeySchema, KeyIdParams, KeySchema } from "./schemas.ts";

/** Revokes a key nobody received, retrying until the database takes it (a key left active would lock out keyless callers). */
async function revokeUntilDone(db: Db, id: number): Promise<void> {
  for (let attempt = 0; !db.closed; attempt++) {
    try {
      await withRideThrough(db.availability.rideThroughMs, () => revokeApiKey(db, id));
      log("warn", "an API key whose answer was lost was revoked", { key_id: id });
      return;
    } catch (err) {
      if (attempt % 60 === 0) log("warn", "revoking an API key whose answer was lost failed; retrying", { key_id: id, error: String(err) });
      await Bun.sleep(1000);
    }
  }
}

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
      const creating = createApiKey(db, { name: body.name, scope: body.scope, expiresAt });
      const created = await raceWithPending(creating);
      if (created === "pending") {
        // The answer carries the key's only copy of its secret, so it cannot be stored for a later replay: the
        // request is answered "not applied" at the ride-through, and a key that turns out stored (its COMMIT went
        // through, or the write ran again) is revoked once the database answers; nobody ever saw its secret.
        void creating.then(({ info }) => revokeUntilDone(db, info.id)).catch(() => {});
        throw new ApiError(
          "unavailable",
          "the database went away while the key was being stored: no key was issued (one that was stored is revoked); ask again",
          { outcome: "not_applied" },
          { "Retry-After": String(db.availability.retryAfterSeconds()) },
        );
      }
      const { key, info } = created;
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
