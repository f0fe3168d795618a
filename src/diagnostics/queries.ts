import { count } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { walSize } from "../db/checkpoint.ts";
import { openConnection } from "../db/open.ts";
import { listConnections } from "../db/registry.ts";
import { sites } from "../db/schema.ts";
import { isBusyError } from "../errors.ts";
import { findDataDays } from "../sync/data.ts";
import { instanceStorage } from "../supervision.ts";

/** Reads the database header; false when the database cannot be reached. */
export async function pingDatabase(db: Db): Promise<boolean> {
  try {
    // Not `select 1`: that never opens the file. A migrated database has a schema version above 0.
    return (db.raw.reader.query<{ schema_version: number }, []>("PRAGMA schema_version").get()?.schema_version ?? 0) > 0;
  } catch {
    return false;
  }
}

/** Storage trouble older than this no longer makes /health degraded. */
const RECENT_MS = 30_000;

export type Health = { status: "healthy" | "degraded" | "unhealthy"; database_connected: boolean; reasons: string[] };

/**
 * The health of the database as this process sees it. `unhealthy` (503): the file cannot be read,
 * or the path no longer names the file opened (deleted or replaced: writes are refused). `degraded`
 * (200, reads still work): writes failed for storage reasons lately (disk full, I/O error, read-only),
 * checkpoints are failing, or the WAL is past `walBoundBytes` — in this process or, as the supervisor
 * reports it, in any process of the instance.
 */
export async function assessHealth(db: Db, walBoundBytes: number): Promise<Health> {
  const changed = db.guard.problem(0);
  if (changed) return { status: "unhealthy", database_connected: false, reasons: [changed] };
  if (!(await pingDatabase(db))) return { status: "unhealthy", database_connected: false, reasons: ["the database file cannot be read, or holds no schema"] };
  const reasons: string[] = [];
  const recent = (at: number | string | undefined | null) => at != null && Date.now() - new Date(at).getTime() < RECENT_MS;
  const own = db.stats.lastStorageError;
  const all = instanceStorage();
  const last = all?.last_write_storage_error && (!own || Date.parse(all.last_write_storage_error.at) > own.at) ? all.last_write_storage_error : own;
  if (last && recent(last.at)) {
    reasons.push(`writes are failing for storage reasons: ${last.code} (${last.message}); ${Math.max(all?.write_storage_errors ?? 0, db.stats.storageErrors)} failed writes since start`);
  }
  if (all?.checkpoint_error) reasons.push(`checkpoints are failing: ${all.checkpoint_error.message} (${all.checkpoint_failures} failures since start)`);
  const wal = walSize(db.path);
  if (wal > walBoundBytes) reasons.push(`the WAL is ${wal} bytes, over its bound of ${walBoundBytes}`);
  return { status: reasons.length > 0 ? "degraded" : "healthy", database_connected: true, reasons };
}

/** The original `get_connection_info()`, across processes: every live process holding a connection. */
export async function getConnectionInfo(db: Db) {
  const rows = await listConnections(db);
  return {
    current_pid: process.pid,
    connection_pids: rows.map((r) => r.pid),
    total_connections: rows.length,
    processes: rows.map((r) => ({
      pid: r.pid,
      role: r.role,
      started_at: r.started_at,
      last_seen_at: r.last_seen_at,
      busy_retries: r.busy_retries,
    })),
  };
}

/** The connection's effective pragma settings. */
export function pragmaSettings(db: Db) {
  const one = (name: string) => Object.values(db.raw.reader.query(`PRAGMA ${name}`).get() as object)[0];
  const sync = ["OFF", "NORMAL", "FULL", "EXTRA"][Number(one("synchronous"))] ?? String(one("synchronous"));
  return {
    journal_mode: String(one("journal_mode")),
    busy_timeout_ms: Number(one("busy_timeout")),
    synchronous: sync,
    synchronous_code: Number(one("synchronous")),
    cache_size: Number(one("cache_size")),
    foreign_keys: Number(one("foreign_keys")) === 1,
    mmap_size: Number(one("mmap_size")),
    journal_size_limit: Number(one("journal_size_limit")),
    wal_autocheckpoint: Number(one("wal_autocheckpoint")),
  };
}

/** How long a lock probe's answer is reused: check-locks must not be a way to slow writers down. */
const LOCK_PROBE_TTL_MS = 1000;
const lockProbes = new WeakMap<Db, { at: number; free: boolean }>();

/**
 * Whether no process held the write lock, probed without waiting at most once a second per process
 * (taking the lock even for a moment makes every writer of every process wait); `age_ms` says how
 * old the answer is.
 */
export function isWriteLockFree(db: Db): { free: boolean; age_ms: number } {
  const now = performance.now();
  const cached = lockProbes.get(db);
  if (cached && now - cached.at < LOCK_PROBE_TTL_MS) return { free: cached.free, age_ms: Math.round(now - cached.at) };
  let free: boolean;
  // Our own writer is idle while this synchronous code runs; busy_timeout is 0 on it.
  try {
    db.raw.writer.run("BEGIN IMMEDIATE");
    db.raw.writer.run("ROLLBACK");
    free = true;
  } catch (err) {
    if (!isBusyError(err)) throw err;
    free = false;
  }
  lockProbes.set(db, { at: now, free });
  return { free, age_ms: 0 };
}

/** The check-locks report: state, settings, WAL size, lock probe, busy retries and advice. */
export async function checkLocks(db: Db, walWarnBytes: number) {
  const fileProblem = db.guard.problem(0);
  const settings = pragmaSettings(db);
  // Never take the lock on a file that is no longer the database.
  const probe = fileProblem ? { free: false, age_ms: 0 } : isWriteLockFree(db);
  const free = probe.free;
  const wal = walSize(db.path);
  const processes = await listConnections(db).catch(() => []);
  const busyRetries = processes.reduce((n, p) => n + p.busy_retries, 0);
  const all = instanceStorage();
  const storage = {
    file_identity: db.guard.expected,
    file_problem: fileProblem,
    checkpoint_failures: all?.checkpoint_failures ?? null,
    checkpoint_error: all?.checkpoint_error ?? null,
    write_storage_errors: Math.max(all?.write_storage_errors ?? 0, db.stats.storageErrors),
    last_write_storage_error: all?.last_write_storage_error ?? (db.stats.lastStorageError && { ...db.stats.lastStorageError, at: new Date(db.stats.lastStorageError.at).toISOString() }),
    process_storage_errors: db.stats.storageErrors,
    writes_refused_file_changed: db.stats.refusedFileChanged,
    max_write_lock_hold_ms: Math.round(db.stats.maxHoldMs * 1000) / 1000,
    reported_at: all?.at ?? null,
  };
  const warnings: string[] = [];
  if (fileProblem) warnings.push(`${fileProblem}: writes are refused; restart the service on the right file`);
  if (settings.journal_mode.toLowerCase() !== "wal") warnings.push("journal_mode is not WAL: several processes will block each other");
  if (settings.busy_timeout_ms < 1000) warnings.push("busy_timeout is under 1 s: raise SQLITE_BUSY_TIMEOUT_MS");
  if (storage.checkpoint_error) {
    warnings.push(`checkpoints are failing (${storage.checkpoint_error.message}): the WAL cannot be written back; check free disk space and the file's permissions`);
  } else if (wal > walWarnBytes) {
    warnings.push("the WAL is past the checkpoint threshold: look for a long-running reader that holds an old snapshot");
  }
  if (storage.last_write_storage_error) {
    warnings.push(`writes failed for storage reasons (${storage.last_write_storage_error.code}: ${storage.last_write_storage_error.message}): check free disk space and the file's permissions`);
  }
  if (!free && !fileProblem) warnings.push("a write transaction is open right now; if this persists, look for a long transaction");
  return {
    // The original's keys and types first (reference §1.14), then ours.
    database_state: "accessible" as const,
    pragma_settings: {
      journal_mode: settings.journal_mode,
      busy_timeout_ms: settings.busy_timeout_ms,
      // The original gave SQLite's code (1 = NORMAL); the name is beside it.
      synchronous: settings.synchronous_code,
      synchronous_name: settings.synchronous,
      cache_size: settings.cache_size,
      databases: db.raw.reader.query<{ seq: number; name: string; file: string }, []>("PRAGMA database_list").all(),
    },
    recommendations: originalRecommendations,
    lock_state: fileProblem ? ("file_changed" as const) : free ? ("free" as const) : ("write_locked" as const),
    wal_size_bytes: wal,
    write_lock_free: free,
    write_lock_probe_age_ms: probe.age_ms,
    busy_retries: busyRetries,
    process_busy_retries: db.stats.busyRetries,
    write_commits: db.stats.commits,
    writes: db.stats.writes,
    storage,
    warnings,
  };
}

/** The original's constant advice object (its clients print it); what applies to this database is in `warnings`. */
const originalRecommendations = {
  journal_mode: "Should be 'WAL' for better concurrency",
  busy_timeout: "Should be at least 5000ms",
  synchronous: "Should be 'NORMAL' for performance",
};

/**
 * Times a fresh connect, a simple query (the original's count of sites) and a coverage query: the
 * days with rows over all sites, by index seeks per site and day, never a scan of the rows (this
 * runs on an HTTP worker's event loop).
 */
export async function testDbConnection(db: Db) {
  const timed = <T>(f: () => T) => {
    const t0 = performance.now();
    try {
      const result = f();
      return { success: true, time_ms: round(performance.now() - t0), result };
    } catch (err) {
      return { success: false, time_ms: round(performance.now() - t0), error: (err as Error).message };
    }
  };
  // Opens the existing file only (never creates one), and not at all when the path names another file.
  const connection_test = timed(() => {
    const changed = db.guard.problem(0);
    if (changed) throw new Error(changed);
    openConnection(db.path, db.pragmas).close();
  });
  const simple_query = timed(() => db.read.select({ n: count() }).from(sites).get()!.n);
  const coverage_query = timed(() => {
    const days = new Set<string>();
    let withData = 0;
    for (const { id } of db.read.select({ id: sites.id }).from(sites).all()) {
      const found = findDataDays(db, id);
      if (found.length > 0) withData++;
      for (const d of found) days.add(d.date);
    }
    return { days_found: days.size, sites_with_data: withData };
  });
  return {
    connection_test: { success: connection_test.success, time_ms: connection_test.time_ms, ...errorOf(connection_test) },
    simple_query: {
      success: simple_query.success,
      ...(simple_query.result === undefined ? {} : { site_count: simple_query.result }),
      time_ms: simple_query.time_ms,
      ...errorOf(simple_query),
    },
    coverage_query: {
      success: coverage_query.success,
      ...(coverage_query.result ?? {}),
      time_ms: coverage_query.time_ms,
      ...errorOf(coverage_query),
    },
  };
}

function errorOf(r: { error?: string }) {
  return r.error === undefined ? {} : { error: r.error };
}

function round(ms: number) {
  return Math.round(ms * 1000) / 1000;
}
