import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { createSelectSchema } from "drizzle-zod";
import type { Db } from "../db/index.ts";
import { dbConnections } from "../db/schema.ts";
import { jsonResponse, validationHook } from "../openapi.ts";
import { checkLocks, getConnectionInfo, pingDatabase, testDbConnection } from "./queries.ts";

const ConnectionInfoSchema = z.object({
  current_pid: z.number().int(),
  connection_pids: z.array(z.number().int()),
  total_connections: z.number().int(),
});

const HealthSchema = z
  .object({
    status: z.enum(["healthy", "unhealthy"]),
    process_id: z.number().int(),
    database_connected: z.boolean(),
    connection_info: ConnectionInfoSchema.nullable(),
  })
  .openapi("Health");

/** GET /health, answered by whichever worker takes the request. */
export function healthRoutes(db: Db) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["diagnostics"],
      summary: "Liveness and database reachability of the worker that answers",
      responses: { 200: jsonResponse(HealthSchema, "Healthy"), 503: jsonResponse(HealthSchema, "Database unreachable") },
    }),
    async (c) => {
      const ok = await pingDatabase(db);
      const info = ok ? await getConnectionInfo(db).catch(() => null) : null;
      const body = {
        status: ok ? ("healthy" as const) : ("unhealthy" as const),
        process_id: process.pid,
        database_connected: ok,
        connection_info: info && {
          current_pid: info.current_pid,
          connection_pids: info.connection_pids,
          total_connections: info.total_connections,
        },
      };
      return ok ? c.json(body, 200) : c.json(body, 503);
    },
  );
  return app;
}

/** The /api/v1/diagnostics routes. */
export function diagnosticsRoutes(db: Db, opts: { walWarnBytes: number }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/connections",
      tags: ["diagnostics"],
      summary: "Every live process holding a database connection, with role and start time",
      responses: {
        200: jsonResponse(
          ConnectionInfoSchema.extend({
            processes: z.array(createSelectSchema(dbConnections)),
          }),
          "Connections",
        ),
      },
    }),
    async (c) => c.json(await getConnectionInfo(db), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/check-locks",
      tags: ["diagnostics"],
      summary: "Lock state, pragma settings, WAL size, busy retries and recommendations",
      responses: {
        200: jsonResponse(
          z.object({
            database_state: z.enum(["ok", "write_locked"]),
            pragma_settings: z.object({
              journal_mode: z.string(),
              busy_timeout_ms: z.number(),
              synchronous: z.string(),
              cache_size: z.number(),
            }),
            wal_size_bytes: z.number().int(),
            write_lock_free: z.boolean(),
            busy_retries: z.number().int(),
            process_busy_retries: z.number().int(),
            write_commits: z.number().int(),
            writes: z.number().int(),
            recommendations: z.array(z.string()),
          }),
          "Lock report",
        ),
      },
    }),
    async (c) => c.json(await checkLocks(db, opts.walWarnBytes), 200),
  );

  const Timing = z.object({ success: z.boolean(), time_ms: z.number(), error: z.string().optional() });
  app.openapi(
    createRoute({
      method: "get",
      path: "/test-db-connection",
      tags: ["diagnostics"],
      summary: "Timings of a fresh connect, a simple query and a coverage query",
      responses: {
        200: jsonResponse(
          z.object({
            connection_test: Timing,
            simple_query: Timing,
            coverage_query: Timing.extend({ sites_with_data: z.number().int().optional() }),
          }),
          "Timings",
        ),
      },
    }),
    async (c) => c.json(await testDbConnection(db), 200),
  );

  return app;
}
