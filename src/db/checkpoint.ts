import { statSync } from "node:fs";
import { openConnection, type Pragmas } from "./open.ts";

export type CheckpointOptions = {
  intervalMs: number;
  /** Past this WAL size a TRUNCATE checkpoint resets the file to zero bytes. */
  truncateBytes: number;
  optimizeIntervalMs: number;
  /** How long a TRUNCATE may wait for readers to move on (blocks only the checkpointing process). */
  truncateWaitMs?: number;
};

export type CheckpointStats = {
  runs: number;
  truncates: number;
  lastWalBytes: number;
  maxWalBytes: number;
  lastError: string | null;
};

/** Size in bytes of the file's WAL (0 when absent). */
export function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

/**
 * Runs the periodic checkpoint in this process: PASSIVE every interval (never waits), TRUNCATE
 * once the WAL passes truncateBytes, and `PRAGMA optimize` now and then. With readers always
 * active, SQLite's own auto-checkpoint can starve and the WAL grows without bound; this keeps it
 * bounded. Exactly one process should run it (the supervisor, or a standalone tool).
 */
export function startCheckpointer(path: string, pragmas: Pragmas, opts: CheckpointOptions) {
  const conn = openConnection(path, { ...pragmas, busyTimeoutMs: opts.truncateWaitMs ?? 2000, walAutocheckpoint: 0 });
  const stats: CheckpointStats = { runs: 0, truncates: 0, lastWalBytes: 0, maxWalBytes: 0, lastError: null };
  let lastOptimize = performance.now();

  function tick() {
    try {
      const size = walSize(path);
      stats.lastWalBytes = size;
      stats.maxWalBytes = Math.max(stats.maxWalBytes, size);
      if (size === 0) return;
      if (size >= opts.truncateBytes) {
        const r = conn.query<{ busy: number }, []>("PRAGMA wal_checkpoint(TRUNCATE)").get();
        if (r && r.busy === 0) stats.truncates++;
      } else {
        conn.query("PRAGMA wal_checkpoint(PASSIVE)").get();
      }
      stats.runs++;
      if (performance.now() - lastOptimize >= opts.optimizeIntervalMs) {
        lastOptimize = performance.now();
        conn.run("PRAGMA optimize");
      }
      stats.lastError = null;
    } catch (err) {
      // A busy checkpoint is simply tried again next tick.
      stats.lastError = (err as Error).message;
    }
  }

  const timer = setInterval(tick, opts.intervalMs);
  return {
    stats,
    tick,
    stop() {
      clearInterval(timer);
      try {
        conn.run("PRAGMA optimize");
        conn.query("PRAGMA wal_checkpoint(TRUNCATE)").get();
      } catch {
        // Shutting down: another process may still hold the file; its own close checkpoints.
      }
      conn.close();
    },
  };
}
