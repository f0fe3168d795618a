import { and, count, desc, eq, getTableColumns, inArray, lt, sql, type SQL } from "drizzle-orm";
import { first, type Db } from "../db/index.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { sites, syncTasks } from "../db/sqlite/schema.ts";
import type { TaskStatus } from "../db/model.ts";
import { ApiError, isUniqueViolation } from "../errors.ts";
import { siteNotFound } from "../sites/queries.ts";
import { daysBetween, MAX_RANGE_DAYS } from "./dates.ts";
import type { SyncMode } from "./handlers/days.ts";
import { resolveRange } from "./range.ts";
import { clearStaged } from "./staged-day.ts";

// Engine-neutral (db.q / db.t / db.tx), except the reads of the sync API's hot paths (a job, a site's
// existence, its active task), which on SQLite stay statements prepared once per connection.

const p = sql.placeholder;
const jobColumns = { ...getTableColumns(syncTasks), site_name: sites.name };
const jobColumnsOf = (t: Db["t"]) => ({ ...getTableColumns(t.syncTasks), site_name: t.sites.name });

// Asked on the reader (HTTP handlers) and inside createTask's write: one statement, per connection.
const siteStatements = perConnection((orm) => ({
  siteExists: orm
    .select({ id: sites.id, archived_at: sites.archived_at })
    .from(sites)
    .where(eq(sites.id, p("id")))
    .prepare(),
}));

const readStatements = perConnection((orm) => ({
  job: orm
    .select(jobColumns)
    .from(syncTasks)
    .innerJoin(sites, eq(sites.id, syncTasks.site_id))
    .where(eq(syncTasks.id, p("id")))
    .prepare(),
}));

// Asked on the reader first (a 409 then costs no write lock) and again inside createTask's write.
const taskStatements = perConnection((orm) => ({
  activeOfType: orm
    .select({ id: syncTasks.id, status: syncTasks.status })
    .from(syncTasks)
    .where(
      and(eq(syncTasks.site_id, p("site_id")), eq(syncTasks.task_type, p("task_type")), inArray(syncTasks.status, ["pending", "running"])),
    )
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
  checkSyncable(await findSyncableSite(db, input.siteId), input.siteId);
  const active = await findActiveTask(db, input.siteId, input.taskType);
  if (active) throw taskConflict(input, active);
  const { sites: s, syncTasks: st } = db.t;
  try {
    return await db.tx(async (tx) => {
      checkSyncable(first(await tx.select({ id: s.id, archived_at: s.archived_at }).from(s).where(eq(s.id, input.siteId))), input.siteId);
      const rows = await tx
        .insert(st)
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
        .returning({ id: st.id });
      return rows[0]!;
    }, `queueing a ${input.taskType} of site ${input.siteId}`);
  } catch (err) {
    // The partial unique index decided (another request, maybe of another process, was first): on
    // PostgreSQL the failed statement ends the transaction, so the winner is looked up afterwards.
    if (!isUniqueViolation(err)) throw err;
    throw taskConflict(input, await findActiveTask(db, input.siteId, input.taskType));
  }
}

async function findSyncableSite(db: Db, id: number) {
  if (db.engine === "sqlite") return siteStatements(db.read).siteExists.get({ id });
  const s = db.t.sites;
  return first(await db.q.select({ id: s.id, archived_at: s.archived_at }).from(s).where(eq(s.id, id)));
}

async function findActiveTask(db: Db, siteId: number, taskType: string) {
  if (db.engine === "sqlite") return taskStatements(db.read).activeOfType.get({ site_id: siteId, task_type: taskType });
  const st = db.t.syncTasks;
  return first(
    await db.q
      .select({ id: st.id, status: st.status })
      .from(st)
      .where(and(eq(st.site_id, siteId), eq(st.task_type, taskType), inArray(st.status, ["pending", "running"]))),
  );
}

function checkSyncable(site: { archived_at: string | null } | undefined, id: number) {
  if (!site) throw siteNotFound(id);
  if (site.archived_at !== null) {
    throw new ApiError("conflict", `site ${id} is archived: restore it (POST /api/v1/sites/${id}/restore) before syncing`, {
      site_id: id,
      archived_at: site.archived_at,
    });
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

/**
 * Queues the backfill of a site just added: a daily_sync of the longest range one task may cover
 * (MAX_RANGE_DAYS, 480 days up to today minus 2: within the ~16 months Search Console keeps), newest day
 * first, skipping days already stored, so a backfill that stopped (crash, cancel, failure) resumes where
 * it was when queued again. The range passes the same checks as any task's (resolveRange). Same refusals
 * as createTask.
 */
export async function queueBackfill(db: Db, input: { siteId: number; maxAttempts: number }, now = new Date()) {
  const { start, end } = resolveRange({ days: MAX_RANGE_DAYS }, now);
  const task = await createTask(db, {
    siteId: input.siteId,
    taskType: "daily_sync",
    startDate: start,
    endDate: end,
    params: { sync_mode: "skip", order: "newest_first" },
    runAt: now,
    maxAttempts: input.maxAttempts,
  });
  return { id: task.id, start, end };
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
  if (db.engine === "sqlite") return readStatements(db.read).job.get({ id });
  const { sites: s, syncTasks: st } = db.t;
  return first(await db.q.select(jobColumnsOf(db.t)).from(st).innerJoin(s, eq(s.id, st.site_id)).where(eq(st.id, id)));
}

/** True when the site exists. */
export async function siteExists(db: Db, id: number): Promise<boolean> {
  return (await findSyncableSite(db, id)) !== undefined;
}

export type JobFilter = { activeOnly: boolean; siteId?: number; status?: TaskStatus };

/** Tasks matching the filter, newest first, after an optional cursor (an id); `total` ignores paging. */
export async function listJobs(db: Db, f: JobFilter & { limit: number; after?: number }) {
  const { sites: s, syncTasks: st } = db.t;
  const conds: SQL[] = [];
  if (f.activeOnly) conds.push(inArray(st.status, ["pending", "running"]));
  if (f.status) conds.push(eq(st.status, f.status));
  if (f.siteId !== undefined) conds.push(eq(st.site_id, f.siteId));
  const where = and(...conds);
  const total = first(await db.q.select({ n: count() }).from(st).where(where))?.n ?? 0;
  const rows = await db.q
    .select(jobColumnsOf(db.t))
    .from(st)
    .innerJoin(s, eq(s.id, st.site_id))
    .where(and(where, f.after === undefined ? undefined : lt(st.id, f.after)))
    .orderBy(desc(st.id))
    .limit(f.limit + 1);
  const more = rows.length > f.limit;
  const jobs = more ? rows.slice(0, f.limit) : rows;
  return { total, jobs, next: more ? jobs[jobs.length - 1]!.id : null };
}

/**
 * Cancels a task: a pending one at once; a running one is flagged and its worker stops at its next
 * checkpoint. 404 when unknown, 409 when it already finished.
 */
export async function cancelJob(db: Db, id: number): Promise<void> {
  const st = db.t.syncTasks;
  await db.tx(async (tx) => {
    const now = new Date().toISOString();
    const pending = await tx
      .update(st)
      .set({ status: "cancelled", cancel_requested: true, completed_at: now })
      .where(and(eq(st.id, id), eq(st.status, "pending")))
      .returning({ id: st.id });
    // A pending task may hold staging rows of an attempt killed mid-day: nothing will switch them now.
    if (pending.length > 0) return clearStaged(tx, id);
    const running = await tx
      .update(st)
      .set({ cancel_requested: true })
      .where(and(eq(st.id, id), eq(st.status, "running")))
      .returning({ id: st.id });
    if (running.length > 0) return;
    const task = first(await tx.select({ status: st.status }).from(st).where(eq(st.id, id)));
    if (!task) throw jobNotFound(id);
    throw new ApiError("conflict", `job ${id} already finished (${task.status})`, { job_id: id, status: task.status });
  }, `cancel of job ${id}`);
}

/** The 404 for an unknown job id. */
export function jobNotFound(id: number) {
  return new ApiError("not_found", `job ${id} not found`);
}

/** Number of tasks per status and type. */
export async function countTasksByStatus(db: Db) {
  const st = db.t.syncTasks;
  return db.q.select({ status: st.status, type: st.task_type, n: count() }).from(st).groupBy(st.status, st.task_type);
}

/** Rows stored by tasks that were active since `since` (ISO time): their total_records summed. */
export async function countRowsIngestedSince(db: Db, since: string): Promise<number> {
  const st = db.t.syncTasks;
  const row = first(
    await db.q
      .select({ n: sql<number>`coalesce(sum(${st.total_records}), 0)`.mapWith(Number) })
      .from(st)
      .where(sql`coalesce(${st.completed_at}, ${st.heartbeat_at}, ${st.started_at}) >= ${since}`),
  );
  return row?.n ?? 0;
}

/** Per site: when its last task completed, and its newest task's status. */
export async function findLastSyncs(db: Db) {
  const st = db.t.syncTasks;
  // The newest task of each site by id (a correlated subquery written with drizzle left its inner
  // `site_id` unqualified, so it compared the inner table with itself: every site got the newest task's status).
  const newest = db.q
    .select({ id: sql<number>`max(${st.id})`.as("id") })
    .from(st)
    .groupBy(st.site_id);
  const [completed, latest] = await Promise.all([
    db.q
      .select({ site_id: st.site_id, last_completed_at: sql<string | null>`max(${st.completed_at})` })
      .from(st)
      .where(eq(st.status, "completed"))
      .groupBy(st.site_id),
    db.q.select({ site_id: st.site_id, status: st.status }).from(st).where(inArray(st.id, newest)),
  ]);
  const out = new Map<number, { site_id: number; last_completed_at: string | null; latest_status: TaskStatus | null }>();
  for (const r of latest) out.set(r.site_id, { site_id: r.site_id, last_completed_at: null, latest_status: r.status as TaskStatus });
  for (const r of completed) {
    const row = out.get(r.site_id);
    if (row) row.last_completed_at = r.last_completed_at;
  }
  return out;
}
