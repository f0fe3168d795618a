import type { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import { isBusyError } from "../../errors.ts";
import { logOncePer } from "../../log.ts";
import type { SqliteDb } from "../index.ts";
import { openConnection, type Pragmas } from "./open.ts";

export type CheckpointOptions = {
  intervalMs: number;
  /** Past this WAL size a TRUNCATE checkpoint resets the file to zero bytes. */
  truncateBytes: number;
  optimizeIntervalMs: number;
  /**
   * How long a TRUNCATE, once it holds the write lock, may wait for readers of older snapshots.
   * Writers of every process wait meanwhile (delayed, not failed), so keep it short.
   */
  truncateWaitMs?: number;
  /** Called after each checkpoint with its mode, duration (ms) and whether it did its job (metrics). */
  onRun?: (mode: "passive" | "truncate", ms: number, ok: boolean) => void;
};

export type CheckpointStats = {
  runs: number;
  /** TRUNCATE checkpoints that reset the WAL. */
  truncates: number;
  /** TRUNCATE rounds that ended without a reset (lock never free, or readers did not finish). */
  truncateMisses: number;
  lastWalBytes: number;
  maxWalBytes: number;
  /** The last round's error (null once a round worked); busy locks are not errors. */
  lastError: string | null;
  lastErrorAt: string | null;
  /** Rounds that failed for another reason than a busy lock (disk full, I/O error...). */
  failures: number;
};

/** How often a checkpoint that keeps failing is logged (the count of repeats goes with it). */
const FAILURE_LOG_INTERVAL_MS = 60_000;

/** Size in bytes of the file's WAL (0 when absent). */
export function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

const SPIN_MS = 2;
const PAUSE_MIN_MS = 0.5;
const PAUSE_MAX_MS = 4;

/**
 * Runs the periodic checkpoint in this process: PASSIVE every interval (never waits), TRUNCATE
 * once the WAL passes truncateBytes, and `PRAGMA optimize` now and then. With readers always
 * active, SQLite's own auto-checkpoint can starve and the WAL grows without bound; this keeps it
 * bounded. Exactly one process should run it (the supervisor, or a standalone tool).
 */
export function startCheckpointer(path: string, pragmas: Pragmas, opts: CheckpointOptions) {
  const waitMs = opts.truncateWaitMs ?? 200;
  const conn = openConnection(path, { ...pragmas, busyTimeoutMs: waitMs, walAutocheckpoint: 0 });
  // A second connection only probes whether the write lock is free, never waiting.
  const probe = openConnection(path, { ...pragmas, busyTimeoutMs: waitMs, walAutocheckpoint: 0 });
  probe.run("PRAGMA busy_timeout = 0");
  const begin = probe.prepare("BEGIN IMMEDIATE");
  const rollback = probe.prepare("ROLLBACK");
  const passive = conn.prepare("PRAGMA wal_checkpoint(PASSIVE)");
  const truncate = conn.prepare<{ busy: number }, []>("PRAGMA wal_checkpoint(TRUNCATE)");
  const stats: CheckpointStats = {
    runs: 0,
    truncates: 0,
    truncateMisses: 0,
    lastWalBytes: 0,
    maxWalBytes: 0,
    lastError: null,
    lastErrorAt: null,
    failures: 0,
  };
  const failed = (err: unknown) => {
    // A busy checkpoint is simply tried again next round.
    if (isBusyError(err)) return;
    stats.failures++;
    stats.lastError = (err as Error).message;
    stats.lastErrorAt = new Date().toISOString();
    logOncePer("checkpoint failed", FAILURE_LOG_INTERVAL_MS, "error", "checkpoint failed", {
      error: stats.lastError,
      code: (err as { code?: string }).code,
      wal_bytes: stats.lastWalBytes,
      failures: stats.failures,
    });
  };
  let lastOptimize = performance.now();
  let truncating = false;
  let stopped = false;

  function tick() {
    if (truncating || stopped) return;
    try {
      const size = walSize(path);
      stats.lastWalBytes = size;
      stats.maxWalBytes = Math.max(stats.maxWalBytes, size);
      if (size === 0) return;
      if (size >= opts.truncateBytes) {
        truncating = true;
        const t0 = performance.now();
        void truncateRound()
          .then((ok) => opts.onRun?.("truncate", performance.now() - t0, ok))
          .finally(() => (truncating = false));
      } else {
        const t0 = performance.now();
        passive.get();
        opts.onRun?.("passive", performance.now() - t0, true);
      }
      stats.runs++;
      if (performance.now() - lastOptimize >= opts.optimizeIntervalMs) {
        lastOptimize = performance.now();
        conn.run("PRAGMA optimize");
      }
      if (!truncating) stats.lastError = null;
    } catch (err) {
      failed(err);
    }
  }

  // A TRUNCATE needs the write lock. Under a steady write load some writer holds it nearly all the
  // time and frees it only for microseconds between transactions, while SQLite's busy handler polls
  // every 1..100 ms: a plain TRUNCATE with a busy timeout almost never gets the lock, falls back to
  // PASSIVE, and the WAL keeps growing. So: watch for a free moment in short synchronous spins
  // (pausing in between so this event loop still runs) and TRUNCATE right then; its busy timeout
  // is then spent only on waiting for older readers.
  async function truncateRound(): Promise<boolean> {
    const until = performance.now() + Math.max(opts.intervalMs, 500);
    let pause = PAUSE_MIN_MS;
    try {
      while (!stopped && performance.now() < until) {
        if (spinForFreeLock()) {
          if (truncate.get()?.busy === 0) {
            stats.truncates++;
            stats.lastWalBytes = walSize(path);
            stats.lastError = null;
            return true;
          }
          // A writer got in first, or a reader kept an old snapshot too long: try again.
          pause = PAUSE_MIN_MS;
        }
        await Bun.sleep(pause * (0.5 + Math.random()));
        pause = Math.min(PAUSE_MAX_MS, pause * 2);
      }
    } catch (err) {
      failed(err);
    }
    stats.truncateMisses++;
    return false;
  }

  /** True when the write lock was free at some moment within SPIN_MS (and has been let go again). */
  function spinForFreeLock(): boolean {
    const until = performance.now() + SPIN_MS;
    do {
      try {
        begin.run();
        rollback.run();
        return true;
      } catch (err) {
        if (!isBusyError(err)) throw err;
      }
    } while (performance.now() < until);
    return false;
  }

  const timer = setInterval(tick, opts.intervalMs);
  return {
    stats,
    /** Stops; `final` false skips the last checkpoint (the file at the path is not ours any more). */
    stop(final = true) {
      stopped = true;
      clearInterval(timer);
      if (!final) return;
      try {
        conn.run("PRAGMA optimize");
        truncate.get();
      } catch {
        // Shutting down: another process may still hold the file; its own close checkpoints.
      }
      probe.close();
      conn.close();
    },
  };
}

// The sync worker copies what it wrote into the file itself (a PASSIVE checkpoint after each day's switch, on a
// connection of its own, outside any write: other writers go on meanwhile), so the copying runs on the sync's CPUs
// (SYNC_CPUS) whether or not its writer checkpoints in its COMMITs (SQLITE_WAL_AUTOCHECKPOINT), instead of in the
// supervisor's checkpointer, beside the HTTP workers: ~1-3 µs a row of a file with history, in one burst a second
// there (docs/benchmarks/ingest-export.md, eleventh pass). Where the writer's COMMIT already did it, it finds nothing.
const ownCheckpointers = new WeakMap<SqliteDb, Database>();

/** Copies this process's WAL frames into the file (PASSIVE: never waits; busy means someone else is at it). */
export function copyOwnWalFrames(db: SqliteDb): void {
  let c = ownCheckpointers.get(db);
  try {
    if (!c) {
      const conn = openConnection(db.path, { ...db.pragmas, walAutocheckpoint: 0 });
      c = conn;
      ownCheckpointers.set(db, conn);
      db.onClose.push(() => conn.close());
    }
    c.run("PRAGMA wal_checkpoint(PASSIVE)");
  } catch (err) {
    if (!isBusyError(err))
      logOncePer("sync checkpoint failed", 60_000, "warn", "the sync worker's checkpoint failed", { error: String(err) });
  }
}
