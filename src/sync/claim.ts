import { sql } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { claimNextTaskPg, findDueTaskPg } from "../db/pg/claim.ts";
import { perConnection } from "../db/sqlite/prepared.ts";
import { syncTasks } from "../db/sqlite/schema.ts";
import type { SyncTask } from "../db/model.ts";

const p = sql.placeholder;
// The oldest due pending task of a type this worker can run (served by sync_tasks_claim_idx).
const oldestDue = sql`select id from sync_tasks
  where status = 'pending' and run_at <= ${p("now")} and task_type in (select value from json_each(${p("types")}))
  order by run_at, id limit 1`;

const readStatements = perConnection((orm) => ({
  due: orm.select({ id: syncTasks.id }).from(syncTasks).where(sql`${syncTasks.id} = (${oldestDue})`).prepare(),
}));

const writeStatements = perConnection((orm) => ({
  // One conditional UPDATE: of several workers racing for the same row inside their IMMEDIATE
  // transactions, the first takes it and the others' subquery no longer finds it pending.
  claim: orm
    .update(syncTasks)
    .set({
      status: "running",
      worker_pid: sql`${p("pid")}`,
      attempts: sql`${syncTasks.attempts} + 1`,
      started_at: sql`coalesce(${syncTasks.started_at}, ${p("now")})`,
      locked_until: sql`${p("until")}`,
      heartbeat_at: sql`${p("now")}`,
      // Each attempt recounts from the start (days a previous attempt finished count again, quickly).
      progress_done: 0,
      stats_synced: 0,
      stats_failed: 0,
      stats_skipped: 0,
      total_records: 0,
    })
    .where(sql`${syncTasks.id} = (${oldestDue})`)
    .returning()
    .prepare(),
}));

/** The task types a worker runs, encoded once for the claim queries (a JSON array). */
export type TaskTypesParam = string & { readonly __taskTypes: unique symbol };

/** Encodes the task types a worker runs for hasDueTask and claimNextTask. */
export function taskTypesParam(types: string[]): TaskTypesParam {
  return JSON.stringify(types) as TaskTypesParam;
}

/** True when a task this worker could claim is due (a read: idle workers never take the write lock). */
export async function hasDueTask(db: Db, types: TaskTypesParam, now = new Date()): Promise<boolean> {
  if (db.engine === "pg") return (await findDueTaskPg(db, types, now)) !== undefined;
  return readStatements(db.read).due.get({ now: now.toISOString(), types }) !== undefined;
}

/**
 * Atomically takes the oldest due pending task of one of `types`: marks it running with this
 * process's pid, one more attempt and a lease until now + leaseMs. Undefined when none is due.
 * SQLite: one conditional UPDATE in the group commit; PostgreSQL: FOR UPDATE SKIP LOCKED (src/db/pg/claim.ts).
 */
export async function claimNextTask(db: Db, opts: { types: TaskTypesParam; leaseMs: number; pid?: number }): Promise<SyncTask | undefined> {
  const { types } = opts;
  if (db.engine === "pg") return claimNextTaskPg(db, { types, leaseMs: opts.leaseMs, pid: opts.pid ?? process.pid });
  return db.write((tx) => {
    const now = new Date();
    return writeStatements(tx).claim.get({
      pid: opts.pid ?? process.pid,
      now: now.toISOString(),
      until: new Date(now.getTime() + opts.leaseMs).toISOString(),
      types,
    });
  });
}
