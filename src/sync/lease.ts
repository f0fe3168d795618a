import { and, eq, isNull, lt, or, sql } from "drizzle-orm";
import type { Db, Orm } from "../db/index.ts";
import { perConnection } from "../db/prepared.ts";
import { syncTasks, type SyncTask } from "../db/schema.ts";
import { LeaseLost, TaskCancelled } from "./errors.ts";

// Every write about a running task is conditional on the claim that took it: (id, worker_pid, attempts)
// with status 'running'. A worker whose lease expired (and whose task was re-queued, maybe claimed
// again with attempts + 1) matches no row any more, so it can neither record progress nor finish.

/** What identifies one claim of a task. */
export type Claim = { id: number; pid: number; attempt: number };

/** The claim a freshly claimed task row stands for. */
export function claimOf(task: SyncTask): Claim {
  return { id: task.id, pid: task.worker_pid!, attempt: task.attempts };
}

const owned = (c: Claim) =>
  and(eq(syncTasks.id, c.id), eq(syncTasks.worker_pid, c.pid), eq(syncTasks.attempts, c.attempt), eq(syncTasks.status, "running"));

const p = sql.placeholder;
const ownedByPlaceholders = and(
  eq(syncTasks.id, p("id")),
  eq(syncTasks.worker_pid, p("pid")),
  eq(syncTasks.attempts, p("attempt")),
  eq(syncTasks.status, "running"),
);
// A running row without a lease (written by hand or by an older version) counts as expired too.
const expired = and(eq(syncTasks.status, "running"), or(lt(syncTasks.locked_until, p("now")), isNull(syncTasks.locked_until)));
const requeue = sql`(not ${syncTasks.cancel_requested} and ${syncTasks.attempts} < ${syncTasks.max_attempts})`;

/** Fields a progress checkpoint sets along with the lease. */
export type ProgressPatch = Pick<SyncTask, "progress_done" | "stats_synced" | "stats_failed" | "stats_skipped" | "total_records">;

// Renewals run after every batch and heartbeat, the expiry check on every loop pass: compiled once.
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
    reap: orm
      .update(syncTasks)
      .set({
        status: sql`case when ${syncTasks.cancel_requested} then 'cancelled' when ${requeue} then 'pending' else 'failed' end`,
        error: sql`'worker ' || ${syncTasks.worker_pid} || ' stopped renewing its lease during attempt ' || ${syncTasks.attempts}`,
        run_at: sql`case when ${requeue} then ${p("now")} else ${syncTasks.run_at} end`,
        completed_at: sql`case when ${requeue} then null else ${p("now")} end`,
        worker_pid: sql`case when ${requeue} then null else ${syncTasks.worker_pid} end`,
        locked_until: null,
      })
      .where(expired)
      .returning({ id: syncTasks.id, status: syncTasks.status })
      .prepare(),
  };
});

const readStatements = perConnection((orm) => ({
  anyExpired: orm.select({ id: syncTasks.id }).from(syncTasks).where(expired).limit(1).prepare(),
}));

/**
 * Inside a write: renews the lease (and applies `patch`) only while `claim` still owns the task.
 * Throws LeaseLost when it does not, TaskCancelled when a cancel was requested; either way the
 * caller's whole write rolls back.
 */
export function renewLease(tx: Orm, claim: Claim, leaseMs: number, patch?: ProgressPatch): void {
  const now = new Date();
  const s = writeStatements(tx);
  const params = { id: claim.id, pid: claim.pid, attempt: claim.attempt, now: now.toISOString(), until: new Date(now.getTime() + leaseMs).toISOString() };
  const row = patch ? s.renewWithProgress.get({ ...params, ...patch }) : s.renew.get(params);
  if (!row) throw new LeaseLost(claim.id);
  if (row.cancel) throw new TaskCancelled();
}

/**
 * Marks the task completed (only while the claim owns it), or cancelled when a cancel request came
 * after its last checkpoint. Returns the final status; undefined when the claim no longer owned it.
 */
export async function completeTask(db: Db, claim: Claim): Promise<SyncTask["status"] | undefined> {
  return db.write((tx) => {
    const now = new Date().toISOString();
    const cancelled = syncTasks.cancel_requested;
    return tx
      .update(syncTasks)
      .set({
        status: sql`case when ${cancelled} then 'cancelled' else 'completed' end`,
        completed_at: now,
        locked_until: null,
        error: null,
        progress_done: sql`case when ${cancelled} then ${syncTasks.progress_done} else ${syncTasks.progress_total} end`,
      })
      .where(owned(claim))
      .returning({ status: syncTasks.status })
      .get()?.status;
  });
}

/** Marks the task cancelled (its cancel request was seen at a checkpoint). */
export async function cancelClaimedTask(db: Db, claim: Claim): Promise<boolean> {
  return db.write((tx) => {
    const now = new Date().toISOString();
    return (
      tx
        .update(syncTasks)
        .set({ status: "cancelled", completed_at: now, locked_until: null })
        .where(owned(claim))
        .returning({ id: syncTasks.id })
        .get() !== undefined
    );
  });
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
  return db.write((tx) => {
    const now = Date.now();
    const retryAt = new Date(now + delay).toISOString();
    const done = sql`(${syncTasks.cancel_requested} or ${opts.permanent ? 1 : 0} or ${syncTasks.attempts} >= ${syncTasks.max_attempts})`;
    return tx
      .update(syncTasks)
      .set({
        status: sql`case when ${syncTasks.cancel_requested} then 'cancelled' when ${done} then 'failed' else 'pending' end`,
        error: opts.error,
        run_at: sql`case when ${done} then ${syncTasks.run_at} else ${retryAt} end`,
        completed_at: sql`case when ${done} then ${new Date(now).toISOString()} else null end`,
        worker_pid: sql`case when ${done} then ${syncTasks.worker_pid} else null end`,
        locked_until: null,
      })
      .where(owned(claim))
      .returning({ status: syncTasks.status, run_at: syncTasks.run_at })
      .get();
  });
}

/** Graceful stop: hands the task back to the queue at once without counting the attempt. */
export async function releaseTask(db: Db, claim: Claim): Promise<boolean> {
  return db.write((tx) => {
    const now = new Date().toISOString();
    return (
      tx
        .update(syncTasks)
        .set({
          status: sql`case when ${syncTasks.cancel_requested} then 'cancelled' else 'pending' end`,
          completed_at: sql`case when ${syncTasks.cancel_requested} then ${now} else null end`,
          attempts: sql`${syncTasks.attempts} - 1`,
          worker_pid: null,
          locked_until: null,
          run_at: now,
        })
        .where(owned(claim))
        .returning({ id: syncTasks.id })
        .get() !== undefined
    );
  });
}

/** True when some running task's lease has expired (a read, so idle workers stay off the write lock). */
export function hasExpiredLeases(db: Db, now = new Date()): boolean {
  return readStatements(db.read).anyExpired.get({ now: now.toISOString() }) !== undefined;
}

/**
 * Re-queues running tasks whose lease expired (their worker died or hung): pending again at once, or
 * failed when their attempts are used up, or cancelled when a cancel was requested. Idempotent and
 * safe from any number of processes: one conditional UPDATE.
 */
export async function reapExpiredLeases(db: Db): Promise<{ id: number; status: SyncTask["status"] }[]> {
  return db.write((tx) => writeStatements(tx).reap.all({ now: new Date().toISOString() }));
}
