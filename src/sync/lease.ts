import { and, eq, isNull, lt, or, sql } from "drizzle-orm";
import { first, type Db, type Q, type Tables } from "../db/index.ts";
import { dueTaskQuery } from "../db/pg/claim.ts";
import { pgSchema } from "../db/pg/driver.ts";
import { namedStatement, perPgHandle } from "../db/pg/prepared.ts";
import { compileSelect, perConnection } from "../db/sqlite/prepared.ts";
import { syncTasks } from "../db/sqlite/schema.ts";
import type { SyncTask } from "../db/model.ts";
import { sqliteOrm } from "../db/sql.ts";
import { hasDueTask, type TaskTypesParam } from "./claim.ts";
import { LeaseLost, TaskCancelled } from "./errors.ts";
import { clearStaged } from "./staged-day.ts";

// Every write about a running task is conditional on the claim that took it: (id, worker_pid, attempts)
// with status 'running'. A worker whose lease expired (and whose task was re-queued, maybe claimed
// again with attempts + 1) matches no row any more, so it can neither record progress nor finish.

/** What identifies one claim of a task. */
export type Claim = { id: number; pid: number; attempt: number };

/** The claim a freshly claimed task row stands for. */
export function claimOf(task: SyncTask): Claim {
  return { id: task.id, pid: task.worker_pid!, attempt: task.attempts };
}

type Tasks = Tables["syncTasks"];
const owned = (st: Tasks, c: Claim) => and(eq(st.id, c.id), eq(st.worker_pid, c.pid), eq(st.attempts, c.attempt), eq(st.status, "running"));

const p = sql.placeholder;
const ownedByPlaceholders = and(
  eq(syncTasks.id, p("id")),
  eq(syncTasks.worker_pid, p("pid")),
  eq(syncTasks.attempts, p("attempt")),
  eq(syncTasks.status, "running"),
);
// A running row without a lease (written by hand or by an older version) counts as expired too.
const expired = and(eq(syncTasks.status, "running"), or(lt(syncTasks.locked_until, p("now")), isNull(syncTasks.locked_until)));

/** Fields a progress checkpoint sets along with the lease. */
export type ProgressPatch = Pick<SyncTask, "progress_done" | "stats_synced" | "stats_failed" | "stats_skipped" | "total_records">;

// SQLite: renewals run with every batch and heartbeat, the expiry check on every loop pass: compiled once.
const writeStatements = perConnection((orm) => {
  const lease = { heartbeat_at: sql`${p("now")}`, locked_until: sql`${p("until")}` };
  const renew = (set: Record<string, unknown>) =>
    orm.update(syncTasks).set(set).where(ownedByPlaceholders).returning({ cancel: syncTasks.cancel_requested }).prepare();
  return {
    renew: renew(lease),
    renewWithProgress: renew({
      ...lease,
      progress_done: sql`${p("progress_done")}`,
      stats_synced: sql`${p("stats_synced")}`,
      stats_failed: sql`${p("stats_failed")}`,
      stats_skipped: sql`${p("stats_skipped")}`,
      total_records: sql`${p("total_records")}`,
    }),
  };
});

// compileSelect writes the LIMIT into the SQL: a statement Drizzle prepares binds its `.limit(1)`, and SQLite prepares such a
// statement again at every run (~7 µs of each idle sync worker's loop pass).
const readStatements = perConnection((orm) => ({
  anyExpired: compileSelect(orm, orm.select({ id: syncTasks.id }).from(syncTasks).where(expired).limit(1)),
}));

// PostgreSQL: the same check as a named statement; and, for the idle loop, with the due-task check in the same
// statement: each idle sync worker asks both every SYNC_POLL_MS, one round trip and one execution on the server.
const pgStatements = perPgHandle((q) => {
  const st = pgSchema().syncTasks;
  const anyExpired = q
    .select({ id: st.id })
    .from(st)
    .where(expiredAt(st, p("now")))
    .limit(1);
  return {
    anyExpired: namedStatement<{ id: number }>("sync_tasks_any_expired", anyExpired),
    idleLook: namedStatement<{ expired: boolean; due: boolean }>(
      "sync_tasks_idle_look",
      q
        .select({ expired: sql<boolean>`exists(${anyExpired})`.as("expired"), due: sql<boolean>`exists(${dueTaskQuery(q)})`.as("due") })
        .from(sql`(select) as look`),
    ),
  };
});

/**
 * Inside a write: renews the lease (and applies `patch`) only while `claim` still owns the task.
 * Throws LeaseLost when it does not, TaskCancelled when a cancel was requested; either way the
 * caller's whole write rolls back. On SQLite it runs synchronously, as a prepared statement.
 */
export async function renewLease(db: Db, tx: Q, claim: Claim, leaseMs: number, patch?: ProgressPatch): Promise<void> {
  const now = new Date();
  const until = new Date(now.getTime() + leaseMs).toISOString();
  const orm = sqliteOrm(tx);
  let row: { cancel: boolean } | undefined;
  if (orm) {
    const s = writeStatements(orm);
    const params = { id: claim.id, pid: claim.pid, attempt: claim.attempt, now: now.toISOString(), until };
    row = patch ? s.renewWithProgress.get({ ...params, ...patch }) : s.renew.get(params);
  } else {
    const st = db.t.syncTasks;
    row = first(
      await tx
        .update(st)
        .set({ heartbeat_at: now.toISOString(), locked_until: until, ...patch })
        .where(owned(st, claim))
        .returning({ cancel: st.cancel_requested }),
    );
  }
  if (!row) throw new LeaseLost(claim.id);
  if (row.cancel) throw new TaskCancelled();
}

/**
 * Marks the task completed (only while the claim owns it), or cancelled when a cancel request came
 * after its last checkpoint. Returns the final status; undefined when the claim no longer owned it.
 */
export async function completeTask(db: Db, claim: Claim): Promise<SyncTask["status"] | undefined> {
  const st = db.t.syncTasks;
  return db.tx(async (tx) => {
    const now = new Date().toISOString();
    const cancelled = st.cancel_requested;
    const row = first(
      await tx
        .update(st)
        .set({
          status: sql`case when ${cancelled} then 'cancelled' else 'completed' end`,
          completed_at: now,
          locked_until: null,
          error: null,
          progress_done: sql`case when ${cancelled} then ${st.progress_done} else ${st.progress_total} end`,
        })
        .where(owned(st, claim))
        .returning({ status: st.status }),
    );
    return row?.status;
  }, `completion of task ${claim.id}`);
}

/** Marks the task cancelled (its cancel request was seen at a checkpoint). */
export async function cancelClaimedTask(db: Db, claim: Claim): Promise<boolean> {
  const st = db.t.syncTasks;
  return db.tx(async (tx) => {
    const now = new Date().toISOString();
    const rows = await tx
      .update(st)
      .set({ status: "cancelled", completed_at: now, locked_until: null })
      .where(owned(st, claim))
      .returning({ id: st.id });
    // A day staged but not switched will never be: its staging rows go with the task.
    if (rows.length > 0) await clearStaged(tx, claim.id);
    return rows.length > 0;
  }, `cancel of task ${claim.id}`);
}

/**
 * After a handler error: back to pending with run_at = now + base * 2^(attempt-1) * jitter, or failed
 * when the error is permanent or the attempts are used up (cancelled if a cancel was requested).
 * Keeps the error message. Returns the new status, or undefined when the claim no longer owned it.
 */
export async function failOrRetryTask(
  db: Db,
  claim: Claim,
  opts: { error: string; permanent: boolean; retryBaseMs: number },
): Promise<{ status: SyncTask["status"]; run_at: string } | undefined> {
  const delay = opts.retryBaseMs * 2 ** (claim.attempt - 1) * (0.5 + Math.random());
  const st = db.t.syncTasks;
  return db.tx(async (tx) => {
    const now = Date.now();
    const retryAt = new Date(now + delay).toISOString();
    const done = sql`(${st.cancel_requested} or ${opts.permanent ? sql`true` : sql`false`} or ${st.attempts} >= ${st.max_attempts})`;
    const row = first(
      await tx
        .update(st)
        .set({
          status: sql`case when ${st.cancel_requested} then 'cancelled' when ${done} then 'failed' else 'pending' end`,
          error: opts.error,
          run_at: sql`case when ${done} then ${st.run_at} else ${retryAt} end`,
          completed_at: sql`case when ${done} then ${new Date(now).toISOString()} else null end`,
          worker_pid: sql`case when ${done} then ${st.worker_pid} else null end`,
          locked_until: null,
        })
        .where(owned(st, claim))
        .returning({ status: st.status, run_at: st.run_at }),
    );
    // Ended for good: its staging rows (a day never switched) go with it; a retry restages its day anyway.
    if (row && row.status !== "pending") await clearStaged(tx, claim.id);
    return row;
  }, `retry of task ${claim.id}`);
}

/** Graceful stop: hands the task back to the queue at once without counting the attempt. */
export async function releaseTask(db: Db, claim: Claim): Promise<boolean> {
  const st = db.t.syncTasks;
  return db.tx(async (tx) => {
    const now = new Date().toISOString();
    const rows = await tx
      .update(st)
      .set({
        status: sql`case when ${st.cancel_requested} then 'cancelled' else 'pending' end`,
        completed_at: sql`case when ${st.cancel_requested} then ${now} else null end`,
        attempts: sql`${st.attempts} - 1`,
        worker_pid: null,
        locked_until: null,
        run_at: now,
      })
      .where(owned(st, claim))
      .returning({ id: st.id, status: st.status });
    if (rows[0]?.status === "cancelled") await clearStaged(tx, claim.id);
    return rows.length > 0;
  }, `release of task ${claim.id}`);
}

/** True when some running task's lease has expired (a read, so idle workers stay off the write lock). */
export async function hasExpiredLeases(db: Db, now = new Date()): Promise<boolean> {
  if (db.engine === "sqlite") return readStatements(db.read).anyExpired.get({ now: now.toISOString() }) !== undefined;
  return (await pgStatements(db).anyExpired.run(db.pg.pool, { now: now.toISOString() })).length > 0;
}

/**
 * An idle worker's look: is any lease expired (hasExpiredLeases), is a task of `types` due (hasDueTask)? On PostgreSQL
 * one statement; due is read before any reaping, so a caller that reaps asks hasDueTask again.
 */
export async function lookForWork(db: Db, types: TaskTypesParam, now = new Date()): Promise<{ expired: boolean; due: boolean }> {
  if (db.engine === "sqlite") return { expired: await hasExpiredLeases(db, now), due: await hasDueTask(db, types, now) };
  const row = first(await pgStatements(db).idleLook.run(db.pg.pool, { now: now.toISOString(), types }));
  return { expired: row?.expired === true, due: row?.due === true };
}

// A running row without a lease (written by hand or by an older version) counts as expired too.
const expiredAt = (st: Tasks, now: string | ReturnType<typeof p>) =>
  and(eq(st.status, "running"), or(lt(st.locked_until, now), isNull(st.locked_until)));

/**
 * Re-queues running tasks whose lease expired (their worker died or hung, on this host or another: only
 * the lease's age counts, never a pid): pending again at once, or failed when their attempts are used
 * up, or cancelled when a cancel was requested. Idempotent and safe from any number of processes: one
 * conditional UPDATE (on PostgreSQL a row another reaper or a renewal holds is re-checked once free).
 */
export async function reapExpiredLeases(db: Db): Promise<{ id: number; status: SyncTask["status"] }[]> {
  const st = db.t.syncTasks;
  const requeue = sql`(not ${st.cancel_requested} and ${st.attempts} < ${st.max_attempts})`;
  return db.tx(async (tx) => {
    const now = new Date().toISOString();
    const rows = await tx
      .update(st)
      .set({
        status: sql`case when ${st.cancel_requested} then 'cancelled' when ${requeue} then 'pending' else 'failed' end`,
        error: sql`'worker ' || ${st.worker_pid} || ' stopped renewing its lease during attempt ' || ${st.attempts}`,
        run_at: sql`case when ${requeue} then ${now} else ${st.run_at} end`,
        completed_at: sql`case when ${requeue} then null else ${now} end`,
        worker_pid: sql`case when ${requeue} then null else ${st.worker_pid} end`,
        locked_until: null,
      })
      .where(expiredAt(st, now))
      .returning({ id: st.id, status: st.status });
    for (const r of rows) if (r.status !== "pending") await clearStaged(tx, r.id);
    // Both engines return the rows in no promised order; callers and logs read them by id.
    return rows.sort((a, b) => a.id - b.id);
  }, "reaping of expired leases");
}
