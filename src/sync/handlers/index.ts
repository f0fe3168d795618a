import type { Db, Q } from "../../db/index.ts";
import type { SyncTask } from "../../db/model.ts";
import type { SearchAnalyticsSource } from "../source.ts";
import { dailySync } from "./daily-sync.ts";
import { hourlySync } from "./hourly-sync.ts";
import { recheck } from "./recheck.ts";
import { sitemapsSync, urlInspection } from "./sitemaps-sync.ts";

/** Counters a handler reports at each checkpoint (they become the job's progress and stats). */
export type Progress = { done: number; synced: number; failed: number; skipped: number; records: number };

/** What a handler gets to run one claimed task. */
export type TaskContext = {
  task: SyncTask;
  db: Db;
  source: SearchAnalyticsSource;
  /** Rows per write transaction. */
  batchSize: number;
  /**
   * A day × type whose query detail has at most this many rows is written in one transaction with its
   * totals (detail, rollup, grains, marker); a bigger one is staged first, then switched in that one
   * transaction (src/sync/staged-day.ts): readers and crashes see the old day or the new one, never a mix.
   */
  atomicDayRows: number;
  /** Day × type fetches a day-by-day handler starts ahead of the one it writes (SYNC_FETCH_AHEAD). */
  fetchAhead: number;
  /** Aborted on a cancel request, a lost lease or worker shutdown: stop at the next await. */
  signal: AbortSignal;
  /**
   * A short write that commits only while this worker still owns the task (renewing its lease in the
   * same transaction); it throws, writing nothing, after a cancel request or a lost lease. The
   * callback may be async (await its queries, nothing else: on SQLite it runs inside the group commit;
   * on PostgreSQL a transaction that hit a serialization failure or deadlock is run again).
   */
  write<T>(fn: (tx: Q) => T | Promise<T>): Promise<T>;
  /** A checkpoint: records progress under the same condition as write(). */
  progress(p: Progress): Promise<void>;
};

/**
 * One kind of task. run() fetches asynchronously and writes through ctx.write in short batches;
 * throwing retries the task with backoff (PermanentError: fails it at once).
 */
export type TaskHandler = {
  type: string;
  run(ctx: TaskContext): Promise<void>;
};

const registry = new Map<string, TaskHandler>([
  [dailySync.type, dailySync],
  [hourlySync.type, hourlySync],
  [recheck.type, recheck],
  [sitemapsSync.type, sitemapsSync],
  [urlInspection.type, urlInspection],
]);

/** Adds a kind of task (a module exporting a TaskHandler); later registrations replace earlier ones. */
export function registerHandler(handler: TaskHandler): void {
  registry.set(handler.type, handler);
}

/** The handler of a task type, if this process knows it. */
export function getHandler(type: string): TaskHandler | undefined {
  return registry.get(type);
}

/** Every task type this process can run. */
export function taskTypes(): string[] {
  return [...registry.keys()];
}
