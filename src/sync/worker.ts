import { defaults } from "../config.ts";
import { apiErrorOf, isStorageError } from "../errors.ts";
import { redact } from "../redact.ts";
import type { Db } from "../db/index.ts";
import type { SyncTask } from "../db/model.ts";
import { log, logOncePer, withLogContext } from "../log.ts";
import { taskDuration } from "../metrics/registry.ts";
import { claimNextTask, hasDueTask, taskTypesParam } from "./claim.ts";
import { LeaseLost, PermanentError, TaskCancelled, WorkerStopping } from "./errors.ts";
import { getHandler, taskTypes, type TaskContext } from "./handlers/index.ts";
import {
  cancelClaimedTask,
  claimOf,
  completeTask,
  failOrRetryTask,
  lookForWork,
  reapExpiredLeases,
  releaseTask,
  renewLease,
  type Claim,
} from "./lease.ts";
import type { SearchAnalyticsSource } from "./source.ts";
import { sweepEndedStaging } from "./staged-day.ts";
import { giveWay, holdingLock, lastWriteSeenAt } from "./give-way.ts";

export type WorkerOptions = {
  db: Db;
  source: SearchAnalyticsSource;
  /** Idle wait between looks for due tasks (jittered). */
  pollMs: number;
  /** How long a claim lasts without renewal; renewed every third of it. */
  leaseMs: number;
  /** First retry delay after a handler error; doubles per attempt. */
  retryBaseMs: number;
  /** Rows per write transaction while other writers are about (this process found the lock taken lately). */
  batchSize: number;
  /** Rows per write transaction while this worker writes alone (bigger transactions, fewer commits); default batchSize. */
  bulkBatchSize?: number;
  /** Detail rows up to which a day × type is written in one transaction with its totals (default defaultAtomicDayRows; SYNC_ATOMIC_DAY_ROWS). */
  atomicDayRows?: number;
  /** Pause after each write of a task, leaving the lock to other processes' writers. */
  writeGapMs?: number;
  /** Day × type fetches started ahead of the one being written (SYNC_FETCH_AHEAD; default its default). */
  fetchAhead?: number;
};

/** Longest pause of the loop while the database keeps failing. */
const MAX_BACKOFF_MS = 30_000;
/**
 * Longest pause of the loop while it keeps failing otherwise (a query error, PostgreSQL's "database does not exist"):
 * no wake-up cuts it short, as the database coming back up does an outage's, so it stays well under MAX_BACKOFF_MS.
 */
const MAX_ERROR_BACKOFF_MS = 5_000;

/**
 * The loop's pause after an error of its own (not a task's), given the last one (0 after a good turn): doubling from
 * pollMs, up to MAX_BACKOFF_MS while the database is unavailable and MAX_ERROR_BACKOFF_MS for any other error.
 */
export function loopBackoffMs(lastMs: number, pollMs: number, unavailable: boolean): number {
  return Math.min(unavailable ? MAX_BACKOFF_MS : MAX_ERROR_BACKOFF_MS, Math.max(pollMs, lastMs * 2));
}

/**
 * SYNC_ATOMIC_DAY_ROWS's default per engine. SQLite: Google's 50,000-row daily cap, so a day is kept in typed
 * columns and written once in its switch (no staging: its second write and batch COMMITs were ~4 µs of a row's
 * ~11, docs/benchmarks/ingest-export.md); the switch holds the write lock about as long as the staged one.
 * PostgreSQL: 10,000 (its one-transaction day took 12-32 s at 50,000, docs/sync.md).
 */
export const defaultAtomicDayRows = { sqlite: 50_000, pg: 10_000 } as const;

/** How long one sign of another writer keeps the pacing on. */
const CONTENTION_MEMORY_MS = 2000;

export type Worker = {
  /** Stops claiming, aborts the running task at its next await and hands it back to the queue. */
  stop(): Promise<void>;
  /** Tasks this worker finished, by outcome (completed, retry, failed, cancelled, released, lost). */
  counts: Record<string, number>;
};

/**
 * Runs the sync loop in this process: reap expired leases, claim the oldest due task, run it with
 * a renewed lease, record the outcome; when nothing is due, sleep about pollMs. One task at a time.
 * Runs the task types registered when it starts.
 */
export function startWorker(opts: WorkerOptions): Worker {
  const { db } = opts;
  const types = taskTypesParam(taskTypes());
  const counts: Record<string, number> = {};
  const bump = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
    return k;
  };
  let stopping = false;
  let current: AbortController | null = null;
  let wake: (() => void) | null = null;

  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  // Back-to-back batches would win nearly every race for the write lock against writers of other
  // processes, which retry on a timer: once this process has found the lock taken (someone else
  // writes), pause after each write for a while so they get their turn; alone, run at full speed.
  let contendedAt = -Infinity;
  async function yieldLock(contended: boolean) {
    const now = performance.now();
    if (contended) contendedAt = now;
    if (opts.writeGapMs && now - contendedAt < CONTENTION_MEMORY_MS) await Bun.sleep(opts.writeGapMs);
  }

  async function runTask(task: SyncTask) {
    const claim = claimOf(task);
    const handler = getHandler(task.task_type)!;
    const ac = new AbortController();
    current = ac;
    // stop() may have come while the claim was being committed: hand the task straight back.
    if (stopping) ac.abort(new WorkerStopping());
    const started = performance.now();
    log("info", "task started", { task_id: task.id, task_type: task.task_type, site_id: task.site_id, attempt: claim.attempt });

    // The heartbeat keeps the lease while the handler waits on the network, and notices cancel requests.
    const heartbeat = setInterval(
      () => {
        db.tx((tx) => renewLease(db, tx, claim, opts.leaseMs), `lease renewal of task ${task.id}`).catch((err) => {
          if (err instanceof LeaseLost || err instanceof TaskCancelled) ac.abort(err);
          else
            logOncePer(`lease renewal failed ${task.id}`, 60_000, "warn", "lease renewal failed", { task_id: task.id, error: String(err) });
        });
      },
      Math.max(50, Math.floor(opts.leaseMs / 3)),
    );

    const ctx: TaskContext = {
      task,
      db,
      source: opts.source,
      // Short writes while others wait for the lock (found taken, or an HTTP request that may write seen in flight:
      // src/sync/give-way.ts), big ones while nobody does (read at each batch).
      get batchSize() {
        const alone = performance.now() - Math.max(contendedAt, lastWriteSeenAt()) >= CONTENTION_MEMORY_MS;
        return alone ? Math.max(opts.batchSize, opts.bulkBatchSize ?? 0) : opts.batchSize;
      },
      atomicDayRows: opts.atomicDayRows ?? defaultAtomicDayRows[db.engine],
      fetchAhead: opts.fetchAhead ?? defaults.SYNC_FETCH_AHEAD,
      signal: ac.signal,
      write: async (fn) => {
        // A stop, cancel or lost lease noticed meanwhile: write nothing more (the batch loop ends here).
        ac.signal.throwIfAborted();
        // Supervised: not while an HTTP worker has a request in flight (src/sync/give-way.ts).
        giveWay();
        const busyBefore = db.stats.busyRetries;
        // SQLite: this process's queued writes first (the Search Console quota takes of the fetches ahead), so this
        // one starts a transaction of its own: a write joining a group commit after another runs in a SAVEPOINT, and
        // SQLite copies every page it touches into the statement journal (a day's switch 5 -> ~58 µs a row at 5 M).
        if (db.engine === "sqlite") await db.drain();
        // The lease first: on PostgreSQL it also locks the task row, so a reaper or a cancel waits for
        // this transaction instead of racing it. A retried transaction (PostgreSQL) runs fn again: it
        // must only touch the database.
        const result = await db.tx(async (tx) => {
          await renewLease(db, tx, claim, opts.leaseMs);
          return holdingLock(() => fn(tx));
        }, `${task.task_type} task ${task.id}: rows`);
        // After the COMMIT (a big one writes thousands of WAL pages), before whatever the task does next.
        giveWay();
        await yieldLock(db.stats.busyRetries > busyBefore);
        return result;
      },
      progress: (p) =>
        db.tx(
          (tx) =>
            renewLease(db, tx, claim, opts.leaseMs, {
              progress_done: p.done,
              stats_synced: p.synced,
              stats_failed: p.failed,
              stats_skipped: p.skipped,
              total_records: p.records,
            }),
          `${task.task_type} task ${task.id}: progress`,
        ),
    };

    let outcome = "lost";
    try {
      await handler.run(ctx);
      const status = await completeTask(db, claim);
      outcome = bump(status ?? "lost");
      log(status ? "info" : "warn", status ? `task ${status}` : "task finished after its lease was lost", {
        task_id: task.id,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      outcome = await settle(claim, ac.signal.aborted ? ac.signal.reason : err, err);
    } finally {
      clearInterval(heartbeat);
      current = null;
      taskDuration.observe({ type: task.task_type, outcome }, (performance.now() - started) / 1000);
    }
  }

  /** Records how a task that threw ends: cancelled, handed back, retried or failed; returns which. */
  async function settle(claim: Claim, why: unknown, err: unknown): Promise<string> {
    if (why instanceof LeaseLost) {
      log("warn", "task abandoned: lease lost", { task_id: claim.id });
      return bump("lost");
    } else if (why instanceof TaskCancelled) {
      await cancelClaimedTask(db, claim);
      log("info", "task cancelled", { task_id: claim.id });
      return bump("cancelled");
    } else if (why instanceof WorkerStopping) {
      await releaseTask(db, claim);
      log("info", "task handed back to the queue", { task_id: claim.id });
      return bump("released");
    } else {
      // Upstream text may echo a token: redacted before it is stored (readable with a read key) or logged.
      const message = redact(err instanceof Error ? err.message : String(err)).slice(0, 2000);
      const r = await failOrRetryTask(db, claim, {
        error: message,
        permanent: err instanceof PermanentError,
        retryBaseMs: opts.retryBaseMs,
      });
      log("warn", r?.status === "pending" ? "task failed; retry scheduled" : "task failed", {
        task_id: claim.id,
        attempt: claim.attempt,
        status: r?.status,
        run_at: r?.run_at,
        error: message,
      });
      return bump(r?.status === "pending" ? "retry" : (r?.status ?? "lost"));
    }
  }

  // During an outage the loop backs off (doubling up to MAX_BACKOFF_MS) and resumes as soon as the
  // database is known to be back; the outage itself is logged once by db.availability, not per poll. Any other error
  // of the loop backs off too (up to MAX_ERROR_BACKOFF_MS): it used to be retried every poll.
  let backoffMs = 0;
  async function loop() {
    // Rows of tasks that ended without their own clearing (an older version, a task deleted with its site):
    // best effort, the next staged day sweeps them too.
    await sweepEndedStaging(db).catch((err) =>
      logOncePer("staging sweep failed", 60_000, "warn", "sweep of ended tasks' staging rows failed", { error: String(err) }),
    );
    while (!stopping) {
      try {
        const look = await lookForWork(db, types);
        if (look.expired) {
          const reaped = await reapExpiredLeases(db);
          if (reaped.length > 0) log("warn", "expired leases reaped", { tasks: reaped });
        }
        // Reaped tasks are pending again: after a reap, look for a due task afresh.
        const due = look.expired ? await hasDueTask(db, types) : look.due;
        const task = !stopping && due ? await claimNextTask(db, { types, leaseMs: opts.leaseMs }) : undefined;
        if (task) {
          // task_id on every line logged while it runs (Search Console retries, day failures...).
          await withLogContext({ task_id: task.id, task_type: task.task_type }, () => runTask(task));
          backoffMs = 0;
          continue;
        }
        backoffMs = 0;
      } catch (err) {
        const unavailable = apiErrorOf(err)?.code === "unavailable" || isStorageError(err);
        backoffMs = loopBackoffMs(backoffMs, opts.pollMs, unavailable);
        // Once per minute per kind of error (a full disk would fail every poll), with a count. An
        // unreachable server is logged by db.availability (down, still down, back up).
        if (!unavailable || db.availability.downSince === null) {
          logOncePer(`sync loop ${unavailable ? "unavailable" : String(err)}`, 60_000, "error", "sync loop error", { error: String(err) });
        }
      }
      if (stopping) break;
      if (backoffMs > 0 && db.availability.downSince !== null) {
        // Back as soon as the database is: the idle wait is cut short (wake) when it comes up.
        const up = db.availability.waitUp(backoffMs).then((isUp) => isUp && wake?.());
        await idle(backoffMs);
        void up;
      } else await idle(Math.max(backoffMs, opts.pollMs * (0.75 + Math.random() / 2)));
    }
  }

  const done = loop();
  return {
    counts,
    async stop() {
      stopping = true;
      current?.abort(new WorkerStopping());
      wake?.();
      await done;
    },
  };
}
