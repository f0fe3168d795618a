import type { Database } from "bun:sqlite";
import { ApiError, isBusyError } from "../errors.ts";
import { walSize } from "./checkpoint.ts";
import type { Orm } from "./open.ts";

// The write path. Every write of a process goes through one queue:
//  - group commit: writes queued in the same turn of the event loop share one BEGIN IMMEDIATE
//    transaction; each runs in its own SAVEPOINT, so one failing write rolls back alone, and every
//    caller is answered only after the COMMIT;
//  - no blocking on the lock: the writer connection has busy_timeout=0; when another process holds
//    the write lock, BEGIN IMMEDIATE fails at once and is retried asynchronously, so the event loop
//    keeps serving reads meanwhile and writes pile into the next group;
//  - the statements of the transaction itself are prepared once.
//
// Chosen by measurement (`bun run bench`, create scenario, 4 processes; see BENCHMARKS.md):
//  - retries: locks here are held for well under a millisecond, but Bun's timers fire after 1 ms at
//    the earliest. So the first POLL_ATTEMPTS retries go on the next turns of the event loop
//    (setImmediate: each turn also serves the I/O that came in, and adds its writes to the group),
//    then every RETRY_MS (jittered). The former 0.5..8 ms exponential timer backoff left the lock
//    idle while everyone slept: create p99 22.7 ms -> 11.5 ms, max 138 ms -> 22 ms.
//  - the writer keeps SQLite's own PASSIVE auto-checkpoint after its commits (wal_autocheckpoint,
//    1000 pages by default, SQLITE_WAL_AUTOCHECKPOINT): with it the WAL restarts from its start;
//    with it off (the supervisor's checkpointer alone) the WAL grew to ~100 MB between TRUNCATEs
//    that stalled every writer for 100+ ms.

export type WriteFn<T> = (tx: Orm) => T;

type Pending = {
  fn: WriteFn<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  queuedAt: number;
};

export type WriterStats = {
  /** Times BEGIN IMMEDIATE found the lock taken and was retried later. */
  busyRetries: number;
  /** Transactions committed (each holds one or more writes). */
  commits: number;
  /** Writes committed. */
  writes: number;
  /** Writes that gave up after lockTimeoutMs. */
  timeouts: number;
  /** Transactions that first left the lock free because the WAL was past walYield.bytes. */
  yields: number;
};

export type WriterOptions = {
  /** Give up (503) when the lock could not be taken for this long. */
  lockTimeoutMs: number;
  /** Most writes in one transaction. */
  maxBatch: number;
  /** Past this WAL size, leave the lock free for a moment before each transaction (see flush). */
  walYield?: { dbPath: string; bytes: number };
};

export type Writer = {
  write<T>(fn: WriteFn<T>): Promise<T>;
  stats: WriterStats;
  /** Resolves when every queued write has been committed or failed. */
  drain(): Promise<void>;
  /** Writes waiting for the lock right now. */
  queueLength(): number;
  /** Called after each COMMIT with the writes it held and how long the oldest waited for the lock (ms). */
  onCommit: ((groupSize: number, lockWaitMs: number) => void)[];
};

const POLL_ATTEMPTS = 10;
const RETRY_MS = 2;
const YIELD_MS = 1;

/** Creates the group-commit write queue over a dedicated writer connection. */
export function createWriter(sqlite: Database, orm: Orm, opts: WriterOptions): Writer {
  // busy_timeout=0: a held lock must come back to us at once instead of sleeping in the busy handler.
  sqlite.run("PRAGMA busy_timeout = 0");
  const begin = sqlite.prepare("BEGIN IMMEDIATE");
  const commit = sqlite.prepare("COMMIT");
  const rollback = sqlite.prepare("ROLLBACK");
  const savepoint = sqlite.prepare("SAVEPOINT w");
  const release = sqlite.prepare("RELEASE w");
  const rollbackTo = sqlite.prepare("ROLLBACK TO w");

  const stats: WriterStats = { busyRetries: 0, commits: 0, writes: 0, timeouts: 0, yields: 0 };
  let queue: Pending[] = [];
  let scheduled = false;
  let attempt = 0;
  let drainWaiters: (() => void)[] = [];
  const onCommit: ((groupSize: number, lockWaitMs: number) => void)[] = [];

  function schedule(delayMs: number) {
    if (scheduled) return;
    scheduled = true;
    if (delayMs <= 0) setImmediate(flush);
    else setTimeout(flush, delayMs);
  }

  function failExpired(now: number) {
    const keep: Pending[] = [];
    for (const p of queue) {
      if (now - p.queuedAt >= opts.lockTimeoutMs) {
        stats.timeouts++;
        p.reject(new ApiError("unavailable", "the database stayed busy too long; retry the request"));
      } else keep.push(p);
    }
    queue = keep;
  }

  // Under a steady load the lock passes from one transaction to the next with no gap, so the
  // checkpointer (another process) cannot take it and the WAL grows without bound. Once the WAL is
  // well past the checkpoint size, every transaction first leaves the lock free for a moment.
  let yielded = false;
  let walCheckedAt = -Infinity;
  let walOver = false;
  function shouldYield(): boolean {
    if (!opts.walYield || yielded) return false;
    const now = performance.now();
    if (now - walCheckedAt >= YIELD_MS) {
      walCheckedAt = now;
      walOver = walSize(opts.walYield.dbPath) > opts.walYield.bytes;
    }
    return walOver;
  }

  function flush() {
    scheduled = false;
    if (queue.length === 0) return settleDrain();
    if (shouldYield()) {
      yielded = true;
      stats.yields++;
      return schedule(YIELD_MS * (1 + 2 * Math.random()));
    }
    yielded = false;
    try {
      begin.run();
    } catch (err) {
      if (!isBusyError(err)) return failAll(err);
      stats.busyRetries++;
      failExpired(performance.now());
      if (queue.length === 0) return settleDrain();
      attempt++;
      return schedule(attempt <= POLL_ATTEMPTS ? 0 : RETRY_MS * (0.5 + Math.random()));
    }
    attempt = 0;
    const lockedAt = performance.now();
    const batch = queue.length <= opts.maxBatch ? queue : queue.slice(0, opts.maxBatch);
    queue = batch === queue ? [] : queue.slice(opts.maxBatch);
    const results: { ok: boolean; value: unknown }[] = [];
    // A lone write needs no SAVEPOINT: rolling back the transaction undoes just it. Savepoints cost:
    // SQLite copies each page a write touches into the statement journal (a 500-row sync batch
    // went from ~35 to ~22 µs per row without one).
    const solo = batch.length === 1;
    for (const p of batch) {
      if (!solo) savepoint.run();
      try {
        const value = p.fn(orm);
        // Any thenable: a Promise, or a Drizzle builder whose .run()/.get() was forgotten (it would
        // execute after COMMIT, outside the transaction).
        if (typeof (value as { then?: unknown } | null)?.then === "function") {
          throw new Error("write callbacks must be synchronous and finish their queries (.run()/.get()/.all()): never await inside db.write()");
        }
        if (!solo) release.run();
        results.push({ ok: true, value });
      } catch (err) {
        if (!sqlite.inTransaction) {
          // SQLite rolled the whole transaction back (e.g. disk full): none of the batch committed.
          for (const q of batch) q.reject(err);
          return afterFlush();
        }
        if (solo) {
          rollback.run();
          p.reject(err);
          return afterFlush();
        }
        rollbackTo.run();
        release.run();
        results.push({ ok: false, value: err });
      }
    }
    try {
      commit.run();
    } catch (err) {
      try {
        rollback.run();
      } catch {
        // The transaction is already gone; nothing to undo.
      }
      for (const p of batch) p.reject(err);
      return afterFlush();
    }
    stats.commits++;
    for (const f of onCommit) f(batch.length, lockedAt - batch[0]!.queuedAt);
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r.ok) {
        stats.writes++;
        p.resolve(r.value);
      } else p.reject(r.value);
    });
    afterFlush();
  }

  function afterFlush() {
    if (queue.length > 0) schedule(0);
    else settleDrain();
  }

  function failAll(err: unknown) {
    const q = queue;
    queue = [];
    for (const p of q) p.reject(err);
    settleDrain();
  }

  function settleDrain() {
    const w = drainWaiters;
    drainWaiters = [];
    for (const f of w) f();
  }

  return {
    stats,
    onCommit,
    queueLength: () => queue.length,
    write<T>(fn: WriteFn<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, queuedAt: performance.now() });
        schedule(0);
      });
    },
    drain() {
      if (queue.length === 0 && !scheduled) return Promise.resolve();
      return new Promise<void>((r) => drainWaiters.push(r));
    },
  };
}
