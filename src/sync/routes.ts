import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Db } from "../db/index.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, jsonBody, jsonResponse, setNextLink, validationHook } from "../openapi.ts";
import { siteNotFound } from "../sites/queries.ts";
import { SiteIdParams } from "../sites/schemas.ts";
import { dataDaysSummary } from "./data.ts";
import { completenessSummary, listCorrections, listRecentCompleteness } from "./grain-writes.ts";
import { hourlyDaysSummary } from "./hourly-data.ts";
import { getHandler, taskTypes } from "./handlers/index.ts";
import { cancelJob, createTask, findJob, jobNotFound, listJobs, queueDailySync, siteExists } from "./queries.ts";
import {
  CorrectionListSchema,
  CorrectionsQuery,
  CreateTaskSchema,
  decodeJobCursor,
  encodeJobCursor,
  JobIdParam,
  JobListSchema,
  JobSchema,
  ListJobsQuery,
  resolveRunAt,
  SiteIdParam,
  SyncStatusSchema,
  TaskCreatedSchema,
  toJob,
  toCorrection,
  toDayCompleteness,
  TriggerQuery,
} from "./schemas.ts";
import { resolveRange, windowOf } from "./range.ts";

/** The completeness rows of a site's newest 7 fetched days (every search type). */
async function recentCompleteness(db: Db, siteId: number) {
  const rows = await listRecentCompleteness(db, siteId, 7 * 6);
  const days = [...new Set(rows.map((r) => r.day))].slice(0, 7);
  return rows.filter((r) => days.includes(r.day)).map(toDayCompleteness);
}

export type SyncApiOptions = {
  /** max_attempts of the tasks this API creates (SYNC_MAX_ATTEMPTS). */
  maxAttempts?: number;
};

/** The sync task routes, mounted at /api/v1: /sync/* and /sites/{id}/sync-tasks. */
export function syncRoutes(db: Db, opts: SyncApiOptions = {}) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const maxAttempts = opts.maxAttempts ?? 3;

  const created = (id: number, message: string) => ({ job_id: id, message, status_url: `/api/v1/sync/job/${id}` });

  // The job as the API shows it, or the 404.
  const jobOr404 = async (id: number) => {
    const job = await findJob(db, id);
    if (!job) throw jobNotFound(id);
    return toJob(job);
  };

  app.openapi(
    createRoute({
      method: "post",
      path: "/sync/trigger/{site_id}",
      tags: ["sync"],
      summary: "Start a daily_sync of the last `days` days (ending today minus 2, UTC)",
      request: { params: SiteIdParam, query: TriggerQuery },
      responses: {
        202: jsonResponse(TaskCreatedSchema, "Queued"),
        ...errorResponses(400, 404, 409),
      },
    }),
    async (c) => {
      const { site_id } = c.req.valid("param");
      const q = c.req.valid("query");
      const task = await queueDailySync(db, { siteId: site_id, days: q.days, syncMode: q.sync_mode, maxAttempts });
      c.header("Location", `/api/v1/sync/job/${task.id}`);
      return c.json(created(task.id, `sync of site ${site_id} queued for ${task.start}..${task.end} (${q.sync_mode})`), 202);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/sites/{id}/sync-tasks",
      tags: ["sync"],
      summary: "Queue a sync task with an explicit range, mode and start time",
      description: "Range: `start_date`..`end_date`, or `days` ending at `end_date` (default: today minus 2, UTC).",
      request: { params: SiteIdParams, body: jsonBody(CreateTaskSchema) },
      responses: {
        202: jsonResponse(TaskCreatedSchema, "Queued"),
        ...errorResponses(400, 404, 409, 413, 415),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      if (!getHandler(body.task_type)) {
        throw new ApiError("validation_failed", `unknown task_type '${body.task_type}'`, [
          { path: "task_type", message: `expected one of: ${taskTypes().join(", ")}` },
        ]);
      }
      const range = resolveRange(body, new Date(), windowOf(body.task_type));
      const runAt = resolveRunAt(body.run_at);
      const task = await createTask(db, {
        siteId: id,
        taskType: body.task_type,
        startDate: range.start,
        endDate: range.end,
        params: { sync_mode: body.sync_mode },
        runAt,
        maxAttempts,
      });
      c.header("Location", `/api/v1/sync/job/${task.id}`);
      return c.json(created(task.id, `${body.task_type} of site ${id} queued for ${range.start}..${range.end}`), 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sync/job/{job_id}",
      tags: ["sync"],
      summary: "A sync job's status, progress and stats (from any worker)",
      request: { params: JobIdParam },
      responses: { 200: jsonResponse(JobSchema, "The job"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { job_id } = c.req.valid("param");
      return c.json(await jobOr404(job_id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sync/jobs",
      tags: ["sync"],
      summary: "List sync jobs, newest first",
      description: 'When more remain, a `Link: <...>; rel="next"` header carries the next page.',
      request: { query: ListJobsQuery },
      responses: { 200: jsonResponse(JobListSchema, "Jobs"), ...errorResponses(400) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const page = await listJobs(db, {
        activeOnly: q.active_only,
        siteId: q.site_id,
        status: q.status,
        limit: q.limit,
        after: q.cursor === undefined ? undefined : decodeJobCursor(q.cursor),
      });
      if (page.next !== null) setNextLink(c, encodeJobCursor(page.next));
      return c.json({ total: page.total, jobs: page.jobs.map(toJob) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/sync/job/{job_id}",
      tags: ["sync"],
      summary: "Cancel a job: a pending one at once, a running one at its next checkpoint",
      request: { params: JobIdParam },
      responses: { 200: jsonResponse(JobSchema, "The job after the request"), ...errorResponses(400, 404, 409) },
    }),
    async (c) => {
      const { job_id } = c.req.valid("param");
      await cancelJob(db, job_id);
      return c.json(await jobOr404(job_id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sync/status/{site_id}",
      tags: ["sync"],
      summary: "Which days of a site's Search Console data (daily and hourly) are stored",
      description:
        "`daily_data.total_days`: every day with rows (as the original counted); `final_days`: those of them stored after Search Console stopped revising them (4 days or older, UTC). `completeness`: per (day, search type) fetched at Search Console's grains, whether it is final, cut at Google's 50,000-row cap, and the share of clicks from anonymized queries.",
      request: { params: SiteIdParam },
      responses: { 200: jsonResponse(SyncStatusSchema, "Synced days"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { site_id } = c.req.valid("param");
      if (!(await siteExists(db, site_id))) throw siteNotFound(site_id);
      const completeness = { ...(await completenessSummary(db, site_id)), recent: await recentCompleteness(db, site_id) };
      return c.json(
        { site_id, daily_data: await dataDaysSummary(db, site_id), hourly_data: await hourlyDaysSummary(db, site_id), completeness },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/sites/{id}/corrections",
      tags: ["sync"],
      summary: "Days Google corrected after calling them final: old and new property totals, newest first",
      description:
        'A `recheck` task (scheduled daily over the last SYNC_RECHECK_DAYS final days, or queued with POST /sites/{id}/sync-tasks) or a daily_sync in `overwrite` mode asks Search Console again for a stored final day; when its property totals changed, the change is logged here. When more remain, a `Link: <...>; rel="next"` header carries the next page.',
      request: { params: SiteIdParams, query: CorrectionsQuery },
      responses: { 200: jsonResponse(CorrectionListSchema, "Corrections"), ...errorResponses(400, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      if (!(await siteExists(db, id))) throw siteNotFound(id);
      const rows = await listCorrections(db, id, {
        limit: q.limit + 1,
        before: q.cursor === undefined ? undefined : decodeJobCursor(q.cursor),
      });
      const page = rows.slice(0, q.limit);
      if (rows.length > q.limit) setNextLink(c, encodeJobCursor(Number(page.at(-1)!.id)));
      return c.json({ site_id: id, corrections: page.map(toCorrection) }, 200);
    },
  );

  return app;
}
