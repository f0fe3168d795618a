import type { SqliteDb } from "../db/index.ts";
import { logOncePer } from "../log.ts";

// The sync worker copies what it wrote into the file itself after each day's switch (a PASSIVE checkpoint: other
// writers go on meanwhile), so the copying runs on the sync's CPUs (SYNC_CPUS) instead of in the supervisor's
// checkpointer beside the HTTP workers: ~1-3 µs a row of a file with history, in one burst a second there
// (docs/benchmarks/ingest-export.md, eleventh pass). Where a writer's COMMIT already did it, it finds nothing. The copy waits on the disk
// most of its time (the WAL and the file synced: at 36 days stored ~200 ms of wall a day against ~65 ms of CPU,
// docs/benchmarks/ingest-export.md), so it runs on a thread of its own, one per database handle: the sync goes on with
// its next day meanwhile. The thread is started by the sync's main thread and so keeps to its CPUs and scheduling
// class. Its code is inline (a Blob URL) so the start bundle needs no file of its own for it.

/** The thread's code: opens a connection per copy (none held between copies), runs the checkpoint, answers. */
const CODE = `
import { Database } from "bun:sqlite";
self.onmessage = ({ data }) => {
  let db;
  try {
    db = new Database(data.path, { create: false });
    db.run("PRAGMA busy_timeout = " + data.busyTimeoutMs);
    db.run("PRAGMA synchronous = " + data.synchronous);
    db.run("PRAGMA journal_size_limit = " + data.journalSizeLimit);
    db.run("PRAGMA wal_autocheckpoint = 0");
    db.run("PRAGMA wal_checkpoint(PASSIVE)");
    postMessage({ ok: true });
  } catch (err) {
    postMessage({ ok: false, code: err?.code, error: String(err) });
  } finally {
    db?.close();
  }
};`;

let codeUrl: string | null = null;

type Copier = {
  worker: Worker;
  running: Promise<void> | null;
  queued: Promise<void> | null;
  idle: ReturnType<typeof setTimeout> | null;
};
const copiers = new WeakMap<SqliteDb, Copier>();

/** How long a copier thread is kept after its last copy (then ended: an idle sync worker's memory). */
const IDLE_MS = 60_000;

/** The database handle's copier thread (started at its first copy, ended IDLE_MS after its last or when the handle closes). */
function copierOf(db: SqliteDb): Copier {
  let c = copiers.get(db);
  if (!c) {
    codeUrl ??= URL.createObjectURL(new Blob([CODE], { type: "application/javascript" }));
    const worker = new Worker(codeUrl);
    // Not a reason for the process to stay up.
    worker.unref();
    c = { worker, running: null, queued: null, idle: null };
    copiers.set(db, c);
    db.onClose.push(() => worker.terminate());
  }
  if (c.idle) clearTimeout(c.idle);
  c.idle = null;
  return c;
}

/** After a copy: the thread ends IDLE_MS later unless another copy comes first. */
function endWhenIdle(db: SqliteDb, c: Copier): void {
  if (c.running || c.queued) return;
  c.idle = setTimeout(() => {
    if (c.running || c.queued || copiers.get(db) !== c) return;
    copiers.delete(db);
    c.worker.terminate();
  }, IDLE_MS);
  c.idle.unref();
}

/** One copy on the thread; resolves when it answered (a failure other than busy is logged). */
function copyOnce(db: SqliteDb, c: Copier): Promise<void> {
  return new Promise<void>((resolve) => {
    c.worker.onmessage = (e: MessageEvent<{ ok: boolean; code?: string; error?: string }>) => {
      const r = e.data;
      // Busy: another connection's checkpoint was at it (the supervisor's): it copies the frames.
      if (!r.ok && !String(r.code).startsWith("SQLITE_BUSY"))
        logOncePer("sync checkpoint failed", 60_000, "warn", "the sync worker's checkpoint failed", { error: r.error });
      resolve();
    };
    c.worker.onerror = (e) => {
      logOncePer("sync checkpoint failed", 60_000, "warn", "the sync worker's checkpoint failed", { error: String(e.message) });
      resolve();
    };
    const { busyTimeoutMs, synchronous, journalSizeLimit } = db.pragmas;
    c.worker.postMessage({ path: db.path, busyTimeoutMs, synchronous, journalSizeLimit });
  });
}

/**
 * Copies this process's WAL frames into the file (PASSIVE) on the handle's copier thread; resolves once the frames
 * written before the call are copied (or another connection's checkpoint was at it). A call while a copy runs is
 * served by one more copy after it (calls meanwhile share that one).
 */
export function copyWalFramesOffThread(db: SqliteDb): Promise<void> {
  const c = copierOf(db);
  if (c.queued) return c.queued;
  const start = (): Promise<void> => {
    const p = copyOnce(db, c).finally(() => {
      if (c.running === p) c.running = null;
      endWhenIdle(db, c);
    });
    c.running = p;
    return p;
  };
  if (!c.running) return start();
  const queued = c.running.then(() => {
    c.queued = null;
    return start();
  });
  c.queued = queued;
  return queued;
}
