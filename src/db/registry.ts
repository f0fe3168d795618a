import { eq, inArray } from "drizzle-orm";
import type { Db } from "./index.ts";
import type { dbConnections } from "./schema.ts";

export type ConnectionRow = typeof dbConnections.$inferSelect;

const HEARTBEAT_MS = 2000;
// A row not refreshed for this long belongs to a process that is gone even if its pid is in use
// again (after a container restart pids repeat), so it is not listed.
const STALE_MS = 15 * HEARTBEAT_MS;

/** True when a process with this pid exists on this machine. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Records this process in `db_connections` and keeps its row fresh (busy-retry count included),
 * so any process can list every live process holding a connection. Returns the stop function,
 * which removes the row.
 */
export async function registerProcess(db: Db): Promise<() => void> {
  const pid = process.pid;
  // An upsert, also for the heartbeat: a row pruned while this process was stalled comes back.
  const { dbConnections } = db.t;
  const upsert = () => {
    const row = { pid, role: db.role, started_at: db.startedAt, last_seen_at: new Date().toISOString(), busy_retries: db.stats.busyRetries };
    return db.tx((tx) => tx.insert(dbConnections).values(row).onConflictDoUpdate({ target: dbConnections.pid, set: row }), "registry heartbeat");
  };
  await upsert();
  const timer = setInterval(() => upsert().catch(() => {}), HEARTBEAT_MS);
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    if (db.closed) return;
    if (db.engine === "pg") {
      // close() ends the pool right after: this delete goes out first (the pool queues it before ending).
      void db.q.delete(dbConnections).where(eq(dbConnections.pid, pid)).catch(() => {});
      return;
    }
    try {
      // At shutdown a short blocking wait is fine; the queue is drained already.
      db.raw.writer.run("PRAGMA busy_timeout = 2000");
      db.raw.writer.run("DELETE FROM db_connections WHERE pid = ?", [pid]);
    } catch {
      // Left behind: readers drop it once the pid is gone.
    }
  };
  db.onClose.push(stop);
  return stop;
}

/** Lists live processes holding a connection (this one's counters are live); prunes dead rows. */
export async function listConnections(db: Db): Promise<ConnectionRow[]> {
  const { dbConnections } = db.t;
  const rows = await db.q.select().from(dbConnections).orderBy(dbConnections.pid);
  const live: ConnectionRow[] = [];
  const dead: number[] = [];
  const staleBefore = Date.now() - STALE_MS;
  for (const r of rows) {
    if (r.pid === process.pid) live.push({ ...r, busy_retries: db.stats.busyRetries });
    else if (isAlive(r.pid) && Date.parse(r.last_seen_at) >= staleBefore) live.push(r);
    else dead.push(r.pid);
  }
  if (dead.length > 0) {
    db.tx((tx) => tx.delete(dbConnections).where(inArray(dbConnections.pid, dead))).catch(() => {});
  }
  return live;
}
