import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { jsonResponse, validationHook } from "../openapi.ts";
import { assessHealth, getConnectionInfo } from "./queries.ts";

// GET /health, mounted at every HTTP worker's start; the other diagnostics (src/diagnostics/routes.ts) are loaded on
// their first request (src/lazy-routes.ts).

const ProcessSchema = z.object({
  host: z.string().openapi({ description: "The host name the process registered under (SITESYNC_HOST_NAME)" }),
  pid: z.number().int(),
  role: z.string(),
  started_at: z.string(),
  last_seen_at: z.string().openapi({ description: "Its last heartbeat (every 2 s)" }),
  busy_retries: z.number().int(),
});

/** The processes of every host and their connections (GET /api/v1/diagnostics/connections, and /health's). */
export const ConnectionInfoSchema = z.object({
  current_pid: z.number().int(),
  current_host: z.string(),
  connection_pids: z
    .array(z.number().int())
    .openapi({ description: "As the original; pids of different hosts may repeat: see `processes`" }),
  total_connections: z.number().int(),
  hosts: z.array(z.string()).openapi({ description: "Every host with a live process" }),
  processes: z.array(ProcessSchema),
});

const HealthSchema = z
  .object({
    status: z.enum(["healthy", "degraded", "unhealthy"]),
    process_id: z.number().int(),
    database_connected: z.boolean(),
    connection_info: ConnectionInfoSchema.nullable(),
    reasons: z.array(z.string()).openapi({ description: "Why the status is not healthy (empty when healthy)" }),
  })
  .openapi("Health");

/** GET /health, answered by whichever worker takes the request. */
export function healthRoutes(db: Db, opts: { walBoundBytes: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["diagnostics"],
      summary: "Liveness and database state of the worker that answers",
      description:
        "200 `healthy`; 200 `degraded` with `reasons` when reads work but writes fail for storage reasons (PostgreSQL: lost connections), checkpoints fail or the WAL is past its bound (SQLite); " +
        "503 `unhealthy` with `reasons` when the database cannot be read, its file was deleted or replaced (SQLite), or the server cannot be reached (PostgreSQL). " +
        "`connection_info.processes` lists every live process of every host.",
      responses: {
        200: jsonResponse(HealthSchema, "Healthy or degraded"),
        503: jsonResponse(HealthSchema, "Database unusable"),
      },
    }),
    async (c) => {
      const health = await assessHealth(db, opts.walBoundBytes);
      const info = health.database_connected ? await getConnectionInfo(db).catch(() => null) : null;
      const body = {
        status: health.status,
        process_id: process.pid,
        database_connected: health.database_connected,
        connection_info: info,
        reasons: health.reasons,
      };
      if (health.status === "unhealthy") {
        c.header("Retry-After", String(db.availability.downSince !== null ? db.availability.retryAfterSeconds() : 5));
        return c.json(body, 503);
      }
      return c.json(body, 200);
    },
  );
  return app;
}
