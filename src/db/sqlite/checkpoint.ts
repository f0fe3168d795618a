import { statSync } from "node:fs";
import { isBusyError } from "../../errors.ts";
import { logOncePer } from "../../log.ts";
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
  onRun?: (mode: CheckpointMode, ms: number, ok: boolean) => void;
};

/** The checkpoints the checkpointer runs (see startCheckpointer). */
export type CheckpointMode = "passive" | "restart" | "truncate";

export type CheckpointStats = {
  runs: number;
  /** TRUNCATE checkpoints that reset the WAL. */
  truncates: number;
  /** TRUNCATE rounds that ended without a reset (lock never free, or readers did not finish). */
  truncateMisses: number;
  /** RESTART checkpoints that started the WAL over from its start (the file keeps its size). */
  restarts: number;
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
 * How long a RESTART, once it holds the write lock, waits for readers of older snapshots (SQLite's busy handler
 * sleeps 1, then 2 ms): a reader still on one is let finish and the restart tried again in a moment.
 */
const RESTART_WAIT_MS = 3;

type CheckpointResult = { busy: number; log: number; checkpointed: number };

/** A checkpointer's stats before its first run (also what a PostgreSQL service, which has none, reports). */
export function emptyCheckpointStats(): CheckpointStats {
  return {
    runs: 0,
    truncates: 0,
    truncateMisses: 0,
    restarts: 0,
    lastWalBytes: 0,
    maxWalBytes: 0,
    lastError: null,
    lastErrorAt: null,
    failures: 0,
  };
}

/**
 * Runs the periodic checkpoint in this process: PASSIVE every interval (never waits), RESTART once
 * the log holds half of truncateBytes, TRUNCATE once the WAL file passes truncateBytes, and `PRAGMA
 * optimize` now and then. With readers always active, SQLite's own auto-checkpoint can starve and
 * the WAL grows without bound; this keeps it bounded. Exactly one process should run it (the
 * supervisor, or a standalone tool).
 *
 * Why RESTART before TRUNCATE: both hold the write lock (every writer of every process waits), and
 * a TRUNCATE's shortening of the file frees its blocks: 40-90 ms for 64 MiB on this project's
 * ext4 (mounted with `discard`) at load 12, ~2-14 ms to take a few MiB off (docs/benchmarks/request-path.md). A RESTART only
 * makes the next commit write from the file's start again, so under a steady write load the file
 * stops growing at about what it held when restarted and never gets to a TRUNCATE; its frames
 * are copied by a PASSIVE first, outside the lock, so the restart itself copies only the last
 * moments' frames.
 */
export function startCheckpointer(path: string, pragmas: Pragmas, opts: CheckpointOptions) {
  const waitMs = opts.truncateWaitMs ?? 200;
  const conn = openConnection(path, { ...pragmas, busyTimeoutMs: waitMs, walAutocheckpoint: 0 });
  // A second connection only probes whether the write lock is free, never waiting.
  const probe = openConnection(path, { ...pragmas, busyTimeoutMs: waitMs, walAutocheckpoint: 0 });
  probe.run("PRAGMA busy_timeout = 0");
  // A third one restarts the WAL, waiting only RESTART_WAIT_MS for readers.
  const restarter = openConnection(path, { ...pragmas, busyTimeoutMs: RESTART_WAIT_MS, walAutocheckpoint: 0 });
  const begin = probe.prepare("BEGIN IMMEDIATE");
  const rollback = probe.prepare("ROLLBACK");
  const passive = conn.prepare<CheckpointResult, []>("PRAGMA wal_checkpoint(PASSIVE)");
  const truncate = conn.prepare<CheckpointResult, []>("PRAGMA wal_checkpoint(TRUNCATE)");
  const restart = restarter.prepare<CheckpointResult, []>("PRAGMA wal_checkpoint(RESTART)");
  // A WAL frame is a page and its 24-byte header.
  const frameBytes = (conn.query<{ page_size: number }, []>("PRAGMA page_size").get()?.page_size ?? 4096) + 24;
  const stats = emptyCheckpointStats();
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
  let inRound = false;
  let stopped = false;

  /** Runs one round of `mode` (a TRUNCATE or RESTART) in the background; ticks skip their work until it ends. */
  function startRound(mode: "restart" | "truncate") {
    inRound = true;
    const t0 = performance.now();
    void (mode === "truncate" ? truncateRound() : restartRound())
      .then((ok) => opts.onRun?.(mode, performance.now() - t0, ok))
      .finally(() => (inRound = false));
  }

  function tick() {
    if (inRound || stopped) return;
    try {
      const size = walSize(path);
      stats.lastWalBytes = size;
      stats.maxWalBytes = Math.max(stats.maxWalBytes, size);
      if (size === 0) return;
      if (size >= opts.truncateBytes) startRound("truncate");
      else {
        const t0 = performance.now();
        // log: the frames in the WAL now (-1 when another connection's checkpoint was running).
        const log = passive.get()?.log ?? -1;
        opts.onRun?.("passive", performance.now() - t0, true);
        // Unknown (a writer's auto-checkpoint held the checkpoint lock) counts as long once the file is that big.
        if (size >= opts.truncateBytes / 2 && (log < 0 || log * frameBytes >= opts.truncateBytes / 2)) startRound("restart");
      }
      stats.runs++;
      if (performance.now() - lastOptimize >= opts.optimizeIntervalMs) {
        lastOptimize = performance.now();
        conn.run("PRAGMA optimize");
      }
      if (!inRound) stats.lastError = null;
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
  function truncateRound(): Promise<boolean> {
    return lockRound(
      () => truncate.get()?.busy === 0,
      () => true,
      () => {
        stats.truncates++;
        stats.lastWalBytes = walSize(path);
      },
    ).then((ok) => {
      if (!ok) stats.truncateMisses++;
      return ok;
    });
  }

  // A RESTART's waits for readers are short (RESTART_WAIT_MS), so it is tried many times a round: each time after a
  // PASSIVE has copied what the log holds (outside the lock) and at a moment the lock was free. When restarts do not
  // get through, the WAL grows to truncateBytes, and then the TRUNCATE round's longer wait does it.
  function restartRound(): Promise<boolean> {
    return lockRound(
      () => restart.get()?.busy === 0,
      // Past truncateBytes the TRUNCATE round takes over (its longer wait for readers gets through where these did not).
      () => {
        if (walSize(path) >= opts.truncateBytes) return false;
        passive.get();
        return true;
      },
      () => stats.restarts++,
    );
  }

  /**
   * Tries `attempt` at moments the write lock is free, pausing with a growing backoff in between, until it gets
   * through (`done` runs), `more` says stop, or the round's time is up.
   */
  async function lockRound(attempt: () => boolean, more: () => boolean, done: () => void): Promise<boolean> {
    const until = performance.now() + Math.max(opts.intervalMs, 500);
    let pause = PAUSE_MIN_MS;
    try {
      while (!stopped && performance.now() < until && more()) {
        if (spinForFreeLock()) {
          if (attempt()) {
            done();
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
      restarter.close();
      conn.close();
    },
  };
}
