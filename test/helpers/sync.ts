import { Database } from "bun:sqlite";
import { count, eq } from "drizzle-orm";
import type { Db } from "../../src/db/index.ts";
import type { SyncTask } from "../../src/db/model.ts";
import { findJob } from "../../src/sync/queries.ts";
import { waitFor as waitUntil } from "./wait.ts";

// Small helpers shared by the sync tests.

/** Polls `f` until it returns something truthy; fails after `timeoutMs` with `what` in the message. */
export function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 25): Promise<NonNullable<T>> {
  return waitUntil(f, { timeout: timeoutMs, every: everyMs, what });
}

/**
 * Waits until task `id` has ended (neither pending nor running) and returns its row. On timeout the error says
 * where the task was: its status, attempt, lease, heartbeat, progress and error, as last read.
 */
export async function waitForTaskEnd(db: Db, id: number, timeoutMs = 15_000) {
  let last: Awaited<ReturnType<typeof findJob>>;
  try {
    return await waitFor(
      `task ${id}`,
      async () => {
        last = await findJob(db, id);
        return last && last.status !== "pending" && last.status !== "running" ? last : null;
      },
      timeoutMs,
    );
  } catch (err) {
    const j = last;
    const state = j
      ? `${j.status}, attempt ${j.attempts}/${j.max_attempts}, worker ${j.worker_pid ?? "none"}, run_at ${j.run_at}, started ${j.started_at ?? "never"}, ` +
        `heartbeat ${j.heartbeat_at ?? "never"}, lease until ${j.locked_until ?? "none"}, progress ${j.progress_done}/${j.progress_total}, ` +
        `records ${j.total_records}, cancel requested ${j.cancel_requested}, error ${j.error ?? "none"}`
      : "no such task";
    throw new Error(`${(err as Error).message}; task ${id} last seen at ${new Date().toISOString()}: ${state}`);
  }
}

/** Runs `fn` over a short-lived plain connection to the file (as an outside observer would; SQLite only). */
export function withFile<T>(path: string, fn: (db: Database) => T): T {
  const db = new Database(path, { strict: true });
  try {
    db.run("PRAGMA busy_timeout = 10000");
    return fn(db);
  } finally {
    db.close();
  }
}

/** One task row as stored. */
export async function taskRow(db: Db, id: number): Promise<SyncTask> {
  const { syncTasks } = db.t;
  return (await db.q.select().from(syncTasks).where(eq(syncTasks.id, id)))[0]! as SyncTask;
}

/** Inserts `n` active sites `sc-domain:s<i>.<suffix>`; returns their ids. */
export async function insertSites(db: Db, n: number, suffix = "sync.example"): Promise<number[]> {
  const { sites } = db.t;
  const rows = await db.tx((tx) =>
    tx
      .insert(sites)
      .values(Array.from({ length: n }, (_, i) => ({ domain: `sc-domain:s${i}.${suffix}`, name: `Site ${i}` })))
      .returning({ id: sites.id }),
  );
  // Ids are given in VALUES order (identity/rowid): sorted, the i-th is site s<i>.
  return rows.map((r) => r.id).sort((a, b) => a - b);
}

/** p-th percentile (0..100) of a list of numbers. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Number of stored Search Console rows of a site. */
export async function countRows(db: Db, siteId: number): Promise<number> {
  const g = db.t.gscPerformanceData;
  return (await db.q.select({ n: count() }).from(g).where(eq(g.site_id, siteId)))[0]?.n ?? 0;
}

/** Number of tasks with `status` (every task when omitted). */
export async function countTasks(db: Db, status?: SyncTask["status"]): Promise<number> {
  const st = db.t.syncTasks;
  return (
    (
      await db.q
        .select({ n: count() })
        .from(st)
        .where(status ? eq(st.status, status) : undefined)
    )[0]?.n ?? 0
  );
}

/** Runs `onOrphaned` once this process's parent is gone (it was re-parented), e.g. a test runner killed hard. */
export function exitWithParent(onOrphaned: () => void | Promise<void>, everyMs = 500): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    void onOrphaned();
  }, everyMs);
}
