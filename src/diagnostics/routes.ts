import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { errorResponses, jsonResponse, validationHook } from "../openapi.ts";
import { findSiteById } from "../sites/queries.ts";
import { siteNotFound } from "../sites/queries.ts";
import { SiteIdParam } from "../sync/schemas.ts";
import type { GscProbe } from "./gsc-probe.ts";
import { ConnectionInfoSchema } from "./health.ts";
import { checkLocks, getConnectionInfo, testDbConnection } from "./queries.ts";

/** The /api/v1/diagnostics routes. */
export function diagnosticsRoutes(db: Db, opts: { walWarnBytes: number; gscProbe: GscProbe }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/connections",
      tags: ["diagnostics"],
      summary: "Every live process of every host holding a database connection, with its host, role and start time",
      responses: {
        200: jsonResponse(ConnectionInfoSchema, "Connections"),
      },
    }),
    async (c) => c.json(await getConnectionInfo(db), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/check-locks",
      tags: ["diagnostics"],
      summary:
        "Lock state, pragma settings, WAL size, busy retries and recommendations (SQLite); server facts, pool usage and lock waits (PostgreSQL)",
      description:
        "`engine` tells the shape: `sqlite` keeps the original's keys (pragma_settings, recommendations); `postgresql` answers with the server's own facts instead (README, 'Diagnostics per engine').",
      responses: {
        200: jsonResponse(
          z.discriminatedUnion("engine", [
            z
              .object({
                engine: z.literal("sqlite"),
                database_state: z.literal("accessible").openapi({ description: "As the original: the database answered" }),
                pragma_settings: z.object({
                  journal_mode: z.string(),
                  busy_timeout_ms: z.number(),
                  synchronous: z.number().int().openapi({ description: "SQLite's code, as the original (1 = NORMAL)" }),
                  synchronous_name: z.string(),
                  cache_size: z.number(),
                  databases: z.array(z.object({ seq: z.number().int(), name: z.string(), file: z.string() })),
                }),
                recommendations: z
                  .object({ journal_mode: z.string(), busy_timeout: z.string(), synchronous: z.string() })
                  .openapi({ description: "The original's constant advice; what applies to this database is in `warnings`" }),
                lock_state: z.enum(["free", "write_locked", "file_changed"]),
                wal_size_bytes: z.number().int(),
                write_lock_free: z.boolean(),
                write_lock_probe_age_ms: z
                  .number()
                  .int()
                  .openapi({ description: "Age of the lock probe's answer (probed at most once a second per process)" }),
                busy_retries: z.number().int(),
                process_busy_retries: z.number().int(),
                write_commits: z.number().int(),
                writes: z.number().int(),
                storage: z.object({
                  file_identity: z.string(),
                  file_problem: z.string().nullable(),
                  checkpoint_failures: z.number().int().nullable(),
                  checkpoint_error: z.object({ message: z.string(), at: z.string() }).nullable(),
                  write_storage_errors: z.number().int(),
                  last_write_storage_error: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
                  process_storage_errors: z.number().int(),
                  writes_refused_file_changed: z.number().int(),
                  max_write_lock_hold_ms: z.number(),
                  reported_at: z.string().nullable(),
                }),
                warnings: z.array(z.string()),
              })
              .openapi("CheckLocksSqlite"),
            z
              .object({
                engine: z.literal("postgresql"),
                database_state: z.literal("accessible").openapi({ description: "As the original: the database answered" }),
                server: z.object({
                  version: z.string(),
                  version_num: z.number().int(),
                  max_connections: z.number().int(),
                  statement_timeout: z.string(),
                  database: z.string(),
                  database_size_bytes: z.number().int().openapi({ description: "pg_database_size of this database" }),
                  connections: z.number().int().openapi({ description: "Server connections to this database, from every host" }),
                  locks_waiting: z.number().int(),
                  oldest_transaction_ms: z
                    .number()
                    .int()
                    .openapi({ description: "Age of the oldest open transaction on this database (another connection's)" }),
                }),
                pool: z
                  .object({ max: z.number().int(), total: z.number().int(), idle: z.number().int(), waiting: z.number().int() })
                  .openapi({ description: "This process's connection pool (PG_POOL_SIZE)" }),
                locks_waiting: z.number().int().openapi({ description: "Lock requests not granted (pg_locks) on this database right now" }),
                lock_state: z.enum(["free", "locks_waiting"]),
                busy_retries: z.number().int().openapi({
                  description: "Transactions retried (serialization failure, deadlock, lost connection), over every live process",
                }),
                process_busy_retries: z.number().int(),
                write_commits: z.number().int(),
                writes: z.number().int(),
                storage: z.object({
                  write_storage_errors: z.number().int(),
                  last_write_storage_error: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
                  process_storage_errors: z.number().int(),
                  write_timeouts: z.number().int(),
                }),
                warnings: z.array(z.string()),
              })
              .openapi("CheckLocksPostgres"),
          ]),
          "Lock report",
        ),
      },
    }),
    async (c) => c.json(await checkLocks(db, opts.walWarnBytes), 200),
  );

  const Timing = z.object({ success: z.boolean(), time_ms: z.number(), error: z.string().optional() });
  const TimingOf = <T extends z.ZodRawShape>(shape: T) => Timing.extend(z.object(shape).partial().shape);
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
            simple_query: TimingOf({ site_count: z.number().int() }),
            coverage_query: TimingOf({
              days_found: z.number().int().openapi({ description: "Distinct days with rows over all sites (the original: site 4 only)" }),
              sites_with_data: z.number().int(),
            }),
          }),
          "Timings",
        ),
      },
    }),
    async (c) => c.json(await testDbConnection(db), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/test-gsc-connection/{site_id}",
      tags: ["diagnostics"],
      summary: "Check that the configured Search Console credentials can read this site's property",
      description:
        "One searchAnalytics.query of one row for the newest day with data, no retries. 200 either way: `gsc_test.status` is `ok`, `error` (with Search Console's reason) or `demo` (no credentials configured).",
      request: { params: SiteIdParam },
      responses: {
        200: jsonResponse(
          z.object({
            site_id: z.number().int(),
            site_domain: z.string(),
            gsc_test: z.object({
              status: z.enum(["ok", "error", "demo"]),
              success: z.boolean(),
              source: z.enum(["gsc", "demo"]),
              message: z.string(),
              latency_ms: z.number(),
              expected_latency_ms: z.string().openapi({ description: "As the original: typical Search Console latency" }),
              checked_date: z.string().nullable(),
              rows: z.number().int().nullable(),
              http_status: z.number().int().nullable(),
            }),
          }),
          "The check's answer",
        ),
        ...errorResponses(400, 404),
      },
    }),
    async (c) => {
      const { site_id } = c.req.valid("param");
      const site = await findSiteById(db, site_id);
      if (!site) throw siteNotFound(site_id);
      const result = await opts.gscProbe(site.domain);
      return c.json({ site_id, site_domain: site.domain, gsc_test: { ...result, expected_latency_ms: "2000-5000" } }, 200);
    },
  );

  return app;
}
