import { count } from "drizzle-orm";
import type { Db } from "../db/index.ts";
import { walSize } from "../db/checkpoint.ts";
import { openConnection } from "../db/open.ts";
import { listConnections } from "../db/registry.ts";
import { sites } from "../db/schema.ts";
import { isBusyError } from "../errors.ts";
import { findDataDays } from "../sync/data.ts";

/** Reads the database header; false when the database cannot be reached. */
export async function pingDatabase(db: Db): Promise<boolean> {
  try {
    // Not `select 1`: that never opens the file. A migrated database has a schema version above 0.
    return (db.raw.reader.query<{ schema_version: number }, []>("PRAGMA schema_version").get()?.schema_version ?? 0) > 0;
  } catch {
    return false;
  }
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

/** True when no process holds the write lock right now (probed without waiting). */
export function isWriteLockFree(db: Db): boolean {
  // Our own writer is idle while this synchronous code runs; busy_timeout is 0 on it.
  try {
    db.raw.writer.run("BEGIN IMMEDIATE");
    db.raw.writer.run("ROLLBACK");
    return true;
  } catch (err) {
    if (isBusyError(err)) return false;
    throw err;
  }
}

/** The check-locks report: state, settings, WAL size, lock probe, busy retries and advice. */
export async function checkLocks(db: Db, walWarnBytes: number) {
  const settings = pragmaSettings(db);
  const free = isWriteLockFree(db);
  const wal = walSize(db.path);
  const processes = await listConnections(db);
  const busyRetries = processes.reduce((n, p) => n + p.busy_retries, 0);
  const warnings: string[] = [];
  if (settings.journal_mode.toLowerCase() !== "wal") warnings.push("journal_mode is not WAL: several processes will block each other");
  if (settings.busy_timeout_ms < 1000) warnings.push("busy_timeout is under 1 s: raise SQLITE_BUSY_TIMEOUT_MS");
  if (wal > walWarnBytes) warnings.push("the WAL is past the checkpoint threshold: look for a long-running reader that holds an old snapshot");
  if (!free) warnings.push("a write transaction is open right now; if this persists, look for a long transaction");
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
    lock_state: free ? ("free" as const) : ("write_locked" as const),
    wal_size_bytes: wal,
    write_lock_free: free,
    busy_retries: busyRetries,
    process_busy_retries: db.stats.busyRetries,
    write_commits: db.stats.commits,
    writes: db.stats.writes,
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
  const connection_test = timed(() => openConnection(db.path, db.pragmas).close());
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
