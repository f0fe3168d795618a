import { Database } from "bun:sqlite";
import { count, eq } from "drizzle-orm";
import type { Db } from "../../src/db/index.ts";
import { gscPerformanceData, type SyncTask } from "../../src/db/schema.ts";

// Small helpers shared by the sync tests.

/** Polls `f` until it returns something truthy; fails after `timeoutMs` with `what` in the message. */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

/** Runs `fn` over a short-lived plain connection to the file (as an outside observer would). */
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
export function taskRow(path: string, id: number): SyncTask {
  return withFile(path, (db) => db.query<SyncTask, [number]>("select * from sync_tasks where id = ?").get(id)!);
}

/** Inserts `n` active sites `sc-domain:s<i>.<suffix>`; returns their ids. */
export function insertSites(path: string, n: number, suffix = "sync.example"): number[] {
  return withFile(path, (db) => {
    const ins = db.query<{ id: number }, [string, string]>("insert into sites (domain, name) values (?, ?) returning id");
    return db.transaction(() => Array.from({ length: n }, (_, i) => ins.get(`sc-domain:s${i}.${suffix}`, `Site ${i}`)!.id))();
  });
}

/** p-th percentile (0..100) of a list of numbers. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Number of stored Search Console rows of a site. */
export async function countRows(db: Db, siteId: number): Promise<number> {
  return db.read.select({ n: count() }).from(gscPerformanceData).where(eq(gscPerformanceData.site_id, siteId)).get()?.n ?? 0;
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
