import { and, count, desc, eq, getTableColumns, inArray, lt, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { perConnection } from "../db/prepared.ts";
import { sites, syncTasks, type TaskStatus } from "../db/schema.ts";
import { ApiError, isUniqueViolation } from "../errors.ts";
import { siteNotFound } from "../sites/routes.ts";
import { daysBetween } from "./dates.ts";
import type { SyncMode } from "./handlers/days.ts";
import { resolveRange } from "./schemas.ts";

const p = sql.placeholder;
const jobColumns = { ...getTableColumns(syncTasks), site_name: sites.name };

// Asked on the reader (HTTP handlers) and inside createTask's write: one statement, per connection.
const siteStatements = perConnection((orm) => ({
  siteExists: orm.select({ id: sites.id, archived_at: sites.archived_at }).from(sites).where(eq(sites.id, p("id"))).prepare(),
}));

const readStatements = perConnection((orm) => ({
  job: orm.select(jobColumns).from(syncTasks).innerJoin(sites, eq(sites.id, syncTasks.site_id)).where(eq(syncTasks.id, p("id"))).prepare(),
}));

// Asked on the reader first (a 409 then costs no write lock) and again inside createTask's write.
const taskStatements = perConnection((orm) => ({
  activeOfType: orm
    .select({ id: syncTasks.id, status: syncTasks.status })
    .from(syncTasks)
    .where(and(eq(syncTasks.site_id, p("site_id")), eq(syncTasks.task_type, p("task_type")), inArray(syncTasks.status, ["pending", "running"])))
    .prepare(),
}));

/** A task joined with its site's name: what the job endpoints show. */
export type JobRow = NonNullable<Awaited<ReturnType<typeof findJob>>>;

export type NewTaskInput = {
  siteId: number;
  taskType: string;
  startDate: string;
  endDate: string;
  params: Record<string, unknown>;
  runAt: Date;
  maxAttempts: number;
};

/**
 * Queues a task. 404 when the site does not exist; 409 (with the existing job_id) when the site already
 * has a pending or running task of that type: the partial unique index decides, so 20 racing requests
 * from any number of processes get exactly one task.
 */
export async function createTask(db: Db, input: NewTaskInput): Promise<{ id: number }> {
  // Most refusals are visible to a plain read: answer them without queueing for the write lock.
  checkSyncable(siteStatements(db.read).siteExists.get({ id: input.siteId }), input.siteId);
  const active = taskStatements(db.read).activeOfType.get({ site_id: input.siteId, task_type: input.taskType });
  if (active) throw taskConflict(input, active);
  return db.write((tx) => {
    checkSyncable(siteStatements(tx).siteExists.get({ id: input.siteId }), input.siteId);
    try {
      return tx
        .insert(syncTasks)
        .values({
          site_id: input.siteId,
          task_type: input.taskType,
          start_date: input.startDate,
          end_date: input.endDate,
          progress_total: daysBetween(input.startDate, input.endDate),
          params: input.params,
          run_at: input.runAt.toISOString(),
          max_attempts: input.maxAttempts,
        })
        .returning({ id: syncTasks.id })
        .get()!;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw taskConflict(input, taskStatements(tx).activeOfType.get({ site_id: input.siteId, task_type: input.taskType }));
    }
  });
}

function checkSyncable(site: { archived_at: string | null } | undefined, id: number) {
  if (!site) throw siteNotFound(id);
  if (site.archived_at !== null) {
    throw new ApiError("conflict", `site ${id} is archived: restore it (POST /api/v1/sites/${id}/restore) before syncing`, { site_id: id, archived_at: site.archived_at });
  }
}

/** Queues a daily_sync of the `days` days ending today minus 2 (UTC); same refusals as createTask. */
export async function queueDailySync(db: Db, input: { siteId: number; days: number; syncMode: SyncMode; maxAttempts: number }) {
  const range = resolveRange({ days: input.days });
  const task = await createTask(db, {
    siteId: input.siteId,
    taskType: "daily_sync",
    startDate: range.start,
    endDate: range.end,
    params: { sync_mode: input.syncMode },
    runAt: new Date(),
    maxAttempts: input.maxAttempts,
  });
  return { id: task.id, ...range };
}

function taskConflict(input: NewTaskInput, existing: { id: number; status: TaskStatus } | undefined) {
  return new ApiError(
    "conflict",
    `site ${input.siteId} already has a ${existing?.status ?? "pending or running"} ${input.taskType} (job ${existing?.id})`,
    { job_id: existing?.id ?? null, status: existing?.status ?? null },
  );
}

/** One task with its site's name. */
export async function findJob(db: Db, id: number) {
  return readStatements(db.read).job.get({ id });
}

/** True when the site exists. */
export async function siteExists(db: Db, id: number): Promise<boolean> {
  return siteStatements(db.read).siteExists.get({ id }) !== undefined;
}

export type JobFilter = { activeOnly: boolean; siteId?: number; status?: TaskStatus };

/** Tasks matching the filter, newest first, after an optional cursor (an id); `total` ignores paging. */
export async function listJobs(db: Db, f: JobFilter & { limit: number; after?: number }) {
  const conds: SQL[] = [];
  if (f.activeOnly) conds.push(inArray(syncTasks.status, ["pending", "running"]));
  if (f.status) conds.push(eq(syncTasks.status, f.status));
  if (f.siteId !== undefined) conds.push(eq(syncTasks.site_id, f.siteId));
  const where = and(...conds);
  const total = db.read.select({ n: count() }).from(syncTasks).where(where).get()?.n ?? 0;
  const rows = db.read
    .select(jobColumns)
    .from(syncTasks)
    .innerJoin(sites, eq(sites.id, syncTasks.site_id))
    .where(and(where, f.after === undefined ? undefined : lt(syncTasks.id, f.after)))
    .orderBy(desc(syncTasks.id))
    .limit(f.limit + 1)
    .all();
  const more = rows.length > f.limit;
  const jobs = more ? rows.slice(0, f.limit) : rows;
  return { total, jobs, next: more ? jobs[jobs.length - 1]!.id : null };
}

/**
 * Cancels a task: a pending one at once; a running one is flagged and its worker stops at its next
 * checkpoint. 404 when unknown, 409 when it already finished.
 */
export async function cancelJob(db: Db, id: number): Promise<void> {
  await db.write((tx) => {
    const now = new Date().toISOString();
    const pending = tx
      .update(syncTasks)
      .set({ status: "cancelled", cancel_requested: true, completed_at: now })
      .where(and(eq(syncTasks.id, id), eq(syncTasks.status, "pending")))
      .returning({ id: syncTasks.id })
      .get();
    if (pending) return;
    const running = tx
      .update(syncTasks)
      .set({ cancel_requested: true })
      .where(and(eq(syncTasks.id, id), eq(syncTasks.status, "running")))
      .returning({ id: syncTasks.id })
      .get();
    if (running) return;
    const task = tx.select({ status: syncTasks.status }).from(syncTasks).where(eq(syncTasks.id, id)).get();
    if (!task) throw jobNotFound(id);
    throw new ApiError("conflict", `job ${id} already finished (${task.status})`, { job_id: id, status: task.status });
  });
}

/** The 404 for an unknown job id. */
export function jobNotFound(id: number) {
  return new ApiError("not_found", `job ${id} not found`);
}

/** Number of tasks per status and type. */
export async function countTasksByStatus(db: Db) {
  return db.read
    .select({ status: syncTasks.status, type: syncTasks.task_type, n: count() })
    .from(syncTasks)
    .groupBy(syncTasks.status, syncTasks.task_type)
    .all();
}

/** Rows stored by tasks that were active since `since` (ISO time): their total_records summed. */
export async function countRowsIngestedSince(db: Db, since: string): Promise<number> {
  const row = db.read
    .select({ n: sql<number>`coalesce(sum(${syncTasks.total_records}), 0)` })
    .from(syncTasks)
    .where(sql`coalesce(${syncTasks.completed_at}, ${syncTasks.heartbeat_at}, ${syncTasks.started_at}) >= ${since}`)
    .get();
  return row?.n ?? 0;
}

/** Per site: when its last task completed, and its newest task's status. */
export async function findLastSyncs(db: Db) {
  const rows = db.read
    .select({
      site_id: syncTasks.site_id,
      last_completed_at: sql<string | null>`max(case when ${syncTasks.status} = 'completed' then ${syncTasks.completed_at} end)`,
      latest_status: sql<TaskStatus>`(select t.status from sync_tasks t where t.site_id = ${syncTasks.site_id} order by t.id desc limit 1)`,
    })
    .from(syncTasks)
    .groupBy(syncTasks.site_id)
    .all();
  return new Map(rows.map((r) => [r.site_id, r]));
}
