import { and, asc, eq, lte, sql } from "drizzle-orm";
import { first, type Db, type Q } from "../index.ts";
import type { SyncTask } from "../sqlite/schema.ts";
import { inJsonList } from "../sql.ts";
import { pgSchema } from "./driver.ts";
import { namedStatement, perPgHandle } from "./prepared.ts";

// The PostgreSQL claim: row locks instead of SQLite's single writer. Of several workers (of any process
// on any host) looking for a task at once, each locks a different due row and skips the rows the others
// hold, so none waits for another and no task is claimed twice.

const p = sql.placeholder;
/** The oldest due pending task of one of `types` (placeholders `now`, `types`: a JSON array), as a query to compile. */
export function dueTaskQuery(q: Q) {
  const st = pgSchema().syncTasks;
  return q
    .select({ id: st.id })
    .from(st)
    .where(
      and(
        eq(st.status, "pending"),
        lte(st.run_at, p("now")),
        sql`${st.task_type} in (select jsonb_array_elements_text(${p("types")}::jsonb))`,
      ),
    )
    .orderBy(asc(st.run_at), asc(st.id))
    .limit(1);
}

// A named statement (compiled once, planned once per connection): claims and tests ask it outside the idle loop.
const statements = perPgHandle((q) => ({ due: namedStatement<{ id: number }>("sync_tasks_due", dueTaskQuery(q)) }));

/** The oldest due pending task of one of `types` (a JSON array), or undefined: a plain read, no lock. */
export async function findDueTaskPg(db: Db, types: string, now: Date): Promise<{ id: number } | undefined> {
  return first(await statements(db).due.run(db.pg!.pool, { now: now.toISOString(), types }));
}

/**
 * Takes the oldest due pending task of one of `types` in one transaction: SELECT … FOR UPDATE SKIP LOCKED,
 * then the UPDATE to running (pid, one more attempt, a lease until now + leaseMs). Undefined when none is
 * due or every due one is being claimed by someone else right now.
 */
export async function claimNextTaskPg(db: Db, opts: { types: string; leaseMs: number; pid: number }): Promise<SyncTask | undefined> {
  const { syncTasks } = db.t;
  return db.tx(async (tx) => {
    // Inside the callback: a retried transaction takes a fresh time.
    const now = new Date();
    const at = now.toISOString();
    const due = first(
      await tx
        .select({ id: syncTasks.id })
        .from(syncTasks)
        .where(and(eq(syncTasks.status, "pending"), lte(syncTasks.run_at, at), inJsonList(db, syncTasks.task_type, opts.types)))
        .orderBy(asc(syncTasks.run_at), asc(syncTasks.id))
        .limit(1)
        .for("update", { skipLocked: true }),
    );
    if (!due) return undefined;
    const row = first(
      await tx
        .update(syncTasks)
        .set({
          status: "running",
          worker_pid: opts.pid,
          attempts: sql`${syncTasks.attempts} + 1`,
          started_at: sql`coalesce(${syncTasks.started_at}, ${at})`,
          locked_until: new Date(now.getTime() + opts.leaseMs).toISOString(),
          heartbeat_at: at,
          progress_done: 0,
          stats_synced: 0,
          stats_failed: 0,
          stats_skipped: 0,
          total_records: 0,
        })
        .where(eq(syncTasks.id, due.id))
        .returning(),
    );
    return row as SyncTask | undefined;
  }, "claim of a sync task");
}
