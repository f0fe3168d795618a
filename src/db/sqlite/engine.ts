import type { Database } from "bun:sqlite";
import { ApiError, isBusyError, isStorageError } from "../../errors.ts";
import { log } from "../../log.ts";
import { walSize } from "./checkpoint.ts";
import type { FileGuard } from "./identity.ts";
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

// Callbacks may be async (the engine-neutral code awaits its queries): bun:sqlite runs each query
// synchronously, so such a callback only waits for microtasks and the transaction stays as short. A
// callback that awaits real I/O would hold the write lock meanwhile: don't (the flushing flag keeps the
// queue correct even then, and the long hold is logged).
export type WriteFn<T> = (tx: Orm) => T | Promise<T>;

type Pending = {
  fn: WriteFn<unknown>;
  /** What the write does, for the log line of a long lock hold. */
  label?: string;
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
  /** Writes that failed because of the file itself (disk full, I/O error, read-only, corrupt). */
  storageErrors: number;
  /** The last of those: SQLite's code and message, and when (ms since the epoch). */
  lastStorageError: { code: string; message: string; at: number } | null;
  /** Writes refused because the database file was deleted or replaced (see identity.ts). */
  refusedFileChanged: number;
  /** Longest time one transaction held the write lock (ms). */
  maxHoldMs: number;
  /** Reads run again after their connection was lost (PostgreSQL). */
  readRetries: number;
  /**
   * Transactions whose connection was lost during COMMIT, by what the server said afterwards (PostgreSQL,
   * its commit token). SQLite answers COMMIT itself, synchronously: a failed COMMIT did not commit.
   */
  ambiguousCommits: { committed: number; aborted: number; unknown: number };
};

export type WriterOptions = {
  /** Give up (503) when the lock could not be taken for this long. */
  lockTimeoutMs: number;
  /** Most writes in one transaction. */
  maxBatch: number;
  /** Past this WAL size, leave the lock free for a moment before each transaction (see flush). */
  walYield?: { dbPath: string; bytes: number };
  /** The file this connection opened; writes stop (503) once the path names another file or none. */
  guard?: FileGuard;
  /** Log a transaction that held the write lock longer than this (ms), with what it was doing. */
  holdWarnMs?: number;
};

export type Writer = {
  write<T>(fn: WriteFn<T>, label?: string): Promise<T>;
  stats: WriterStats;
  /** Resolves when every queued write has been committed or failed. */
  drain(): Promise<void>;
  /** Writes waiting for the lock right now. */
  queueLength(): number;
  /** Called after each COMMIT with the writes it held and how long the oldest waited for the lock (ms). */
  onCommit: ((groupSize: number, lockWaitMs: number) => void)[];
  /** Called right before a write's failure (rolled back, refused, timed out) reaches its caller. */
  onFailure: (() => void)[];
  /**
   * A number that grows by one at each transaction begun and at each write run in it: a write whose position is
   * one past another's ran right after it in the same transaction, nothing between them.
   */
  position(): number;
};

/** Write counters at zero (each engine's write path keeps its own). */
export function newWriterStats(): WriterStats {
  return {
    busyRetries: 0,
    commits: 0,
    writes: 0,
    timeouts: 0,
    yields: 0,
    storageErrors: 0,
    lastStorageError: null,
    refusedFileChanged: 0,
    maxHoldMs: 0,
    readRetries: 0,
    ambiguousCommits: { committed: 0, aborted: 0, unknown: 0 },
  };
}

const POLL_ATTEMPTS = 10;
const RETRY_MS = 2;
const YIELD_MS = 1;
/**
 * How stale the WAL size the yield goes by may be: a stat costs ~2 µs, which every commit paid when commits came more
 * than YIELD_MS apart (solo creates beside reads); the WAL takes seconds to pass twice the checkpoint size.
 */
const WAL_CHECK_MS = 10;
/** The longest yield, in YIELD_MS, however far past its size the WAL is. */
const YIELD_MAX_FACTOR = 16;
/** How stale the identity check before a transaction may be (one stat per 100 ms at most). */
const GUARD_MAX_AGE_MS = 100;

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

  const stats = newWriterStats();
  const fileChanged = (why: string) => {
    const err = new ApiError(
      "unavailable",
      "the database file was deleted or replaced while the service was running; writes are refused until it is restarted",
    );
    err.cause = why;
    return err;
  };
  let queue: Pending[] = [];
  let scheduled = false;
  let attempt = 0;
  let position = 0;
  let drainWaiters: (() => void)[] = [];
  const onCommit: ((groupSize: number, lockWaitMs: number) => void)[] = [];
  const onFailure: (() => void)[] = [];

  let flushing = false;
  function schedule(delayMs: number) {
    if (scheduled || flushing) return;
    scheduled = true;
    if (delayMs <= 0) setImmediate(flush);
    else setTimeout(flush, delayMs);
  }

  function failExpired(now: number) {
    // The queue is in the order writes were queued (a batch put back goes first, as it was): when its head has
    // not waited lockTimeoutMs, nothing has (a busy retry under contention costs no copy of the queue).
    if (queue.length === 0 || now - queue[0]!.queuedAt < opts.lockTimeoutMs) return;
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
  // well past the checkpoint size, every transaction first leaves the lock free for a moment, and the
  // further past it the WAL is, the longer the moment: when the checkpointer gets little CPU (a busy
  // machine), short gaps alone let the WAL grow past 8x the yield size.
  let yielded = false;
  let walCheckedAt = -Infinity;
  let walOver = 0;
  function yieldFactor(): number {
    if (!opts.walYield || yielded) return 0;
    const now = performance.now();
    if (now - walCheckedAt >= WAL_CHECK_MS) {
      walCheckedAt = now;
      const size = walSize(opts.walYield.dbPath);
      walOver = size > opts.walYield.bytes ? Math.min(YIELD_MAX_FACTOR, Math.floor(size / opts.walYield.bytes)) : 0;
    }
    return walOver;
  }

  // Runs synchronously to the end unless a callback returns a promise (then it awaits it, keeping
  // the connection to itself: `flushing` holds other flushes back until this one is done).
  async function flush() {
    scheduled = false;
    if (flushing) return;
    if (queue.length === 0) return settleDrain();
    const factor = yieldFactor();
    if (factor > 0) {
      yielded = true;
      stats.yields++;
      return schedule(factor * YIELD_MS * (1 + 2 * Math.random()));
    }
    yielded = false;
    const changed = opts.guard?.problem(GUARD_MAX_AGE_MS);
    if (changed) {
      stats.refusedFileChanged += queue.length;
      return failAll(fileChanged(changed));
    }
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
    position++;
    flushing = true;
    const lockedAt = performance.now();
    const batch = queue.length <= opts.maxBatch ? queue : queue.slice(0, opts.maxBatch);
    queue = batch === queue ? [] : queue.slice(opts.maxBatch);
    const results: { ok: boolean; value: unknown }[] = [];
    // The batch's first write needs no SAVEPOINT: if it fails nothing else has run yet, so the transaction is
    // rolled back and the others go back to the head of the queue. Savepoints cost: SQLite copies each page a
    // write touches into the statement journal (a 500-row sync batch went from ~35 to ~22 µs per row without
    // one; a sync day's switch that a quota write joined, ~5 -> ~58 µs a row at 5 M rows).
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const bare = i === 0;
      if (!bare) savepoint.run();
      position++;
      try {
        let value = p.fn(orm);
        // Any thenable (a Promise, or a Drizzle builder returned unexecuted) settles here, inside the transaction.
        if (typeof (value as { then?: unknown } | null)?.then === "function") value = await value;
        if (!bare) release.run();
        results.push({ ok: true, value });
      } catch (err) {
        if (!sqlite.inTransaction) {
          // SQLite rolled the whole transaction back (e.g. disk full): none of the batch committed.
          noteFailure(err, batch.length);
          for (const q of batch) q.reject(err);
          return afterFlush();
        }
        if (bare) {
          rollback.run();
          noteFailure(err, 1);
          p.reject(err);
          // Not run yet: written in the next transaction, first in line as they were.
          queue = [...batch.slice(1), ...queue];
          return afterFlush();
        }
        rollbackTo.run();
        release.run();
        noteFailure(err, 1);
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
      noteFailure(err, batch.length);
      for (const p of batch) p.reject(err);
      return afterFlush();
    }
    noteHold(performance.now() - lockedAt, batch);
    // Committed to the file this connection opened; if the path names another file (or none) by now,
    // the commit went to a file nobody will open again: do not acknowledge it (a fresh stat, ~1 µs).
    const changedMeanwhile = opts.guard?.problem(0);
    if (changedMeanwhile) {
      stats.refusedFileChanged += batch.length;
      for (const p of batch) p.reject(fileChanged(changedMeanwhile));
      flushing = false;
      return failAll(fileChanged(changedMeanwhile));
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
    flushing = false;
    if (queue.length > 0) schedule(0);
    else settleDrain();
  }

  function failAll(err: unknown) {
    const q = queue;
    queue = [];
    noteFailure(err, q.length);
    for (const p of q) p.reject(err);
    settleDrain();
  }

  function noteFailure(err: unknown, writes: number) {
    if (!isStorageError(err) || writes === 0) return;
    stats.storageErrors += writes;
    const e = err as { code?: string; message?: string };
    stats.lastStorageError = { code: String(e.code), message: String(e.message), at: Date.now() };
  }

  // The lock is taken and given back within one synchronous run, so a hold can only be reported
  // after it ended (a process stopped while holding it is the supervisor's watchdog's business).
  function noteHold(ms: number, batch: Pending[]) {
    if (ms > stats.maxHoldMs) stats.maxHoldMs = ms;
    if (opts.holdWarnMs === undefined || ms < opts.holdWarnMs) return;
    const what = [...new Set(batch.map((p) => p.label ?? (p.fn.name || "anonymous write")))].slice(0, 10);
    log("warn", "write lock held long", { held_ms: Math.round(ms), writes: batch.length, what });
  }

  function settleDrain() {
    const w = drainWaiters;
    drainWaiters = [];
    for (const f of w) f();
  }

  return {
    stats,
    onCommit,
    onFailure,
    queueLength: () => queue.length,
    position: () => position,
    write<T>(fn: WriteFn<T>, label?: string): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const refuse =
          onFailure.length === 0
            ? reject
            : (err: unknown) => {
                for (const f of onFailure) f();
                reject(err);
              };
        queue.push({ fn, label, resolve: resolve as (v: unknown) => void, reject: refuse, queuedAt: performance.now() });
        schedule(0);
      });
    },
    drain() {
      if (queue.length === 0 && !scheduled) return Promise.resolve();
      return new Promise<void>((r) => drainWaiters.push(r));
    },
  };
}
