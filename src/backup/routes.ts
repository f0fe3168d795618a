import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { recordAction } from "../audit/context.ts";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { log } from "../log.ts";
import { errorResponses, jsonResponse, validationHook } from "../openapi.ts";
import { lastRun, listBackups } from "./backup.ts";
import { backupInChild } from "./schedule.ts";

const BackupSchema = z
  .object({ file: z.string(), path: z.string(), size_bytes: z.number().int(), created_at: z.string() })
  .openapi("Backup");
const RunSchema = z
  .object({ at: z.string(), ok: z.boolean(), file: z.string().nullable(), duration_ms: z.number(), error: z.string().nullable() })
  .openapi("BackupRun");
const BackupListSchema = z
  .object({
    dir: z.string(),
    keep: z.number().int(),
    interval_ms: z.number().int().nullable(),
    last_run: RunSchema.nullable(),
    backups: z.array(BackupSchema),
  })
  .openapi("BackupList");

export type BackupApiOptions = { dir: string; keep: number; intervalMs: number };

/** /api/v1/admin/backups (admin scope, see auth/policy.ts); null options: no backups here (PostgreSQL). */
export function backupRoutes(db: Db, options: BackupApiOptions | null) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.use("/backups", async (_c, next) => {
    if (!options)
      throw new ApiError(
        "not_implemented",
        "backups are made of the SQLite file; on PostgreSQL back the server up with its own tools (pg_dump, base backups)",
      );
    await next();
  });
  const opts = options ?? { dir: "", keep: 0, intervalMs: 0 };

  app.openapi(
    createRoute({
      method: "post",
      path: "/backups",
      tags: ["admin"],
      summary: "Make a backup now (an online, checked copy; answered when it is done)",
      responses: { 201: jsonResponse(BackupSchema, "The new backup"), ...errorResponses(401, 403, 503) },
    }),
    async (c) => {
      // A large file takes longer than the idle timeout: this request may wait.
      (c.env as { timeout?: (r: Request, s: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
      // The middleware above refuses PostgreSQL (no options there).
      if (db.engine !== "sqlite") throw new ApiError("not_implemented", "backups are made of the SQLite file");
      const { run, stderr } = await backupInChild({ databaseUrl: db.path, dir: opts.dir, keep: opts.keep });
      if (!run?.ok || !run.file) {
        log("error", "backup failed", { error: run?.error ?? stderr });
        throw new ApiError("unavailable", `backup failed: ${run?.error ?? "see the server log"}`);
      }
      log("info", "backup made", { file: run.file, duration_ms: run.duration_ms });
      await recordAction(db);
      const made = listBackups(opts.dir).find((b) => b.file === run.file);
      if (!made) throw new ApiError("unavailable", "backup made but already pruned (BACKUP_KEEP)");
      return c.json(made, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/backups",
      tags: ["admin"],
      summary: "List backups, newest first, with the outcome of the last run",
      responses: { 200: jsonResponse(BackupListSchema, "Backups"), ...errorResponses(401, 403) },
    }),
    async (c) =>
      c.json(
        {
          dir: opts.dir,
          keep: opts.keep,
          interval_ms: opts.intervalMs || null,
          last_run: lastRun(opts.dir),
          backups: listBackups(opts.dir),
        },
        200,
      ),
  );

  return app;
}
