import { count } from "drizzle-orm";
import type { Db, SqliteDb } from "../db/index.ts";
import { walSize } from "../db/sqlite/checkpoint.ts";
import { connectOnce, pingPg, poolUsage, serverFacts } from "../db/pg/diagnostics.ts";
import { listConnections } from "../db/process-registry.ts";
import { connectOnceSqlite, databaseList, isWriteLockFree, pingSqlite, pragmaSettings } from "../db/sqlite/diagnostics.ts";
import { findDataDays } from "../sync/data.ts";
import { instanceStorage } from "../supervision.ts";

/** How long /health waits for the PostgreSQL server before calling it unreachable. */
const PG_PING_TIMEOUT_MS = 5000;

/** Rejects with "timed out" when `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)),
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether the database answers and holds our schema; on failure, why not. SQLite: the file's header
 * (not `select 1`, which never opens the file). PostgreSQL: a query on the server, within 5 s.
 */
export async function pingDatabase(db: Db): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (db.engine === "pg") {
    // Known down: one probe now (it may be back since the last background probe), never the 5 s wait.
    const a = db.availability;
    const unreachable = () =>
      `the PostgreSQL server cannot be reached: database unreachable since ${new Date(a.downSince!).toISOString()} (${a.lastError})`;
    if (a.downSince !== null && !(await a.probe()) && a.downSince !== null) return { ok: false, reason: unreachable() };
    try {
      if (await within(pingPg(db), PG_PING_TIMEOUT_MS, "the PostgreSQL server")) return { ok: true };
      return { ok: false, reason: "the PostgreSQL database holds no schema (run bun run migrate)" };
    } catch (err) {
      if (a.downSince !== null) return { ok: false, reason: unreachable() };
      return { ok: false, reason: `the PostgreSQL server cannot be reached: ${errorMessage(err)}` };
    }
  }
  try {
    if (pingSqlite(db)) return { ok: true };
  } catch {
    // reported below
  }
  return { ok: false, reason: "the database file cannot be read, or holds no schema" };
}

/** Storage trouble older than this no longer makes /health degraded. */
const RECENT_MS = 30_000;

export type Health = { status: "healthy" | "degraded" | "unhealthy"; database_connected: boolean; reasons: string[] };

/**
 * The health of the database as this process sees it. `unhealthy` (503): SQLite: the file cannot be
 * read, or the path no longer names the file opened (deleted or replaced: writes are refused);
 * PostgreSQL: the server cannot be reached (or the database holds no schema). `degraded` (200, reads
 * still work): writes failed lately for storage reasons (SQLite: disk full, I/O error, read-only;
 * PostgreSQL: the server could not be reached or dropped the connection), in this process or, as the
 * supervisor reports it, in any process of the instance; SQLite also: checkpoints are failing, or the
 * WAL is past `walBoundBytes`.
 */
export async function assessHealth(db: Db, walBoundBytes: number): Promise<Health> {
  if (db.engine === "sqlite") {
    const changed = db.guard.problem(0);
    if (changed) return { status: "unhealthy", database_connected: false, reasons: [changed] };
  }
  const ping = await pingDatabase(db);
  if (!ping.ok) return { status: "unhealthy", database_connected: false, reasons: [ping.reason] };
  const reasons: string[] = [];
  const recent = (at: number | string | undefined | null) => at != null && Date.now() - new Date(at).getTime() < RECENT_MS;
  const own = db.stats.lastStorageError;
  const all = instanceStorage();
  const last =
    all?.last_write_storage_error && (!own || Date.parse(all.last_write_storage_error.at) > own.at) ? all.last_write_storage_error : own;
  if (last && recent(last.at)) {
    const what =
      db.engine === "pg"
        ? "writes are failing: the server could not be reached or dropped the connection"
        : "writes are failing for storage reasons";
    reasons.push(
      `${what}: ${last.code} (${last.message}); ${Math.max(all?.write_storage_errors ?? 0, db.stats.storageErrors)} failed writes since start`,
    );
  }
  if (db.engine === "sqlite") {
    if (all?.checkpoint_error)
      reasons.push(`checkpoints are failing: ${all.checkpoint_error.message} (${all.checkpoint_failures} failures since start)`);
    const wal = walSize(db.path);
    if (wal > walBoundBytes) reasons.push(`the WAL is ${wal} bytes, over its bound of ${walBoundBytes}`);
  }
  return { status: reasons.length > 0 ? "degraded" : "healthy", database_connected: true, reasons };
}

/**
 * The original `get_connection_info()`, across processes and hosts: every live process holding a
 * connection, each with its host.
 */
export async function getConnectionInfo(db: Db) {
  const rows = await listConnections(db);
  return {
    current_pid: process.pid,
    current_host: db.host,
    connection_pids: rows.map((r) => r.pid),
    total_connections: rows.length,
    hosts: [...new Set(rows.map((r) => r.host))],
    processes: rows.map((r) => ({
      host: r.host,
      pid: r.pid,
      role: r.role,
      started_at: r.started_at,
      last_seen_at: r.last_seen_at,
      busy_retries: r.busy_retries,
    })),
  };
}

/** The check-locks report of either engine (`engine` tells which shape). */
export async function checkLocks(db: Db, walWarnBytes: number) {
  return db.engine === "pg" ? checkLocksPg(db) : checkLocksSqlite(db, walWarnBytes);
}

/** The storage-failure counters both engines report (PostgreSQL: lost or refused connections). */
function writeFailures(db: Db) {
  const all = instanceStorage();
  return {
    write_storage_errors: Math.max(all?.write_storage_errors ?? 0, db.stats.storageErrors),
    last_write_storage_error:
      all?.last_write_storage_error ??
      (db.stats.lastStorageError && { ...db.stats.lastStorageError, at: new Date(db.stats.lastStorageError.at).toISOString() }),
    process_storage_errors: db.stats.storageErrors,
  };
}

/**
 * PostgreSQL: the server's facts (version, max_connections, connections, locks waiting, database
 * size), this process's pool, retries and write failures, with advice. No WAL, pragmas or single
 * write lock: the server has row locks and checkpoints its own WAL.
 */
async function checkLocksPg(db: Db) {
  const server = await serverFacts(db);
  const pool = poolUsage(db);
  const processes = await listConnections(db).catch(() => []);
  const busyRetries = processes.reduce((n, p) => n + p.busy_retries, 0);
  const failures = writeFailures(db);
  const warnings: string[] = [];
  if (server.locks_waiting > 0)
    warnings.push(
      `${server.locks_waiting} lock requests are waiting right now; if this persists, look for a long transaction (pg_stat_activity)`,
    );
  if (server.oldest_transaction_ms > 60_000)
    warnings.push(
      `a transaction has been open for ${Math.round(server.oldest_transaction_ms / 1000)} s: it holds its locks and old row versions`,
    );
  if (pool.waiting > 0) warnings.push(`${pool.waiting} queries of this process are waiting for a pooled connection: raise PG_POOL_SIZE`);
  // Every live process may open up to its pool size.
  const possible = processes.length * pool.max;
  if (possible > server.max_connections) {
    warnings.push(
      `${processes.length} processes x PG_POOL_SIZE ${pool.max} = ${possible} possible connections, over the server's max_connections ${server.max_connections}: lower PG_POOL_SIZE or raise max_connections`,
    );
  } else if (server.connections > 0.8 * server.max_connections) {
    warnings.push(`${server.connections} of the server's ${server.max_connections} connections are in use on this database`);
  }
  if (failures.last_write_storage_error) {
    warnings.push(
      `writes failed because the server could not be reached (${failures.last_write_storage_error.code}: ${failures.last_write_storage_error.message})`,
    );
  }
  return {
    engine: "postgresql" as const,
    database_state: "accessible" as const,
    server,
    pool,
    locks_waiting: server.locks_waiting,
    lock_state: server.locks_waiting > 0 ? ("locks_waiting" as const) : ("free" as const),
    busy_retries: busyRetries,
    process_busy_retries: db.stats.busyRetries,
    write_commits: db.stats.commits,
    writes: db.stats.writes,
    storage: { ...failures, write_timeouts: db.stats.timeouts },
    warnings,
  };
}

/** SQLite: state, pragma settings, WAL size, lock probe, busy retries, storage trouble and advice. */
async function checkLocksSqlite(db: SqliteDb, walWarnBytes: number) {
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
    ...writeFailures(db),
    writes_refused_file_changed: db.stats.refusedFileChanged,
    max_write_lock_hold_ms: Math.round(db.stats.maxHoldMs * 1000) / 1000,
    reported_at: all?.at ?? null,
  };
  const warnings: string[] = [];
  if (fileProblem) warnings.push(`${fileProblem}: writes are refused; restart the service on the right file`);
  if (settings.journal_mode.toLowerCase() !== "wal") warnings.push("journal_mode is not WAL: several processes will block each other");
  if (settings.busy_timeout_ms < 1000) warnings.push("busy_timeout is under 1 s: raise SQLITE_BUSY_TIMEOUT_MS");
  if (storage.checkpoint_error) {
    warnings.push(
      `checkpoints are failing (${storage.checkpoint_error.message}): the WAL cannot be written back; check free disk space and the file's permissions`,
    );
  } else if (wal > walWarnBytes) {
    warnings.push("the WAL is past the checkpoint threshold: look for a long-running reader that holds an old snapshot");
  }
  if (storage.last_write_storage_error) {
    warnings.push(
      `writes failed for storage reasons (${storage.last_write_storage_error.code}: ${storage.last_write_storage_error.message}): check free disk space and the file's permissions`,
    );
  }
  if (!free && !fileProblem) warnings.push("a write transaction is open right now; if this persists, look for a long transaction");
  return {
    engine: "sqlite" as const,
    // The original's keys and types first (reference §1.14), then ours.
    database_state: "accessible" as const,
    pragma_settings: {
      journal_mode: settings.journal_mode,
      busy_timeout_ms: settings.busy_timeout_ms,
      // The original gave SQLite's code (1 = NORMAL); the name is beside it.
      synchronous: settings.synchronous_code,
      synchronous_name: settings.synchronous,
      cache_size: settings.cache_size,
      databases: databaseList(db),
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
 * Times a fresh connect (SQLite: opens the file; PostgreSQL: a new connection to the server, as a new
 * process makes), a simple query (the original's count of sites) and a coverage query: the days with
 * rows over all sites, by index seeks per site and day, never a scan of the rows (this runs on an
 * HTTP worker).
 */
export async function testDbConnection(db: Db) {
  const timed = async <T>(f: () => T | Promise<T>) => {
    const t0 = performance.now();
    try {
      const result = await f();
      return { success: true, time_ms: round(performance.now() - t0), result };
    } catch (err) {
      return { success: false, time_ms: round(performance.now() - t0), error: errorMessage(err) };
    }
  };
  const { sites } = db.t;
  const connection_test = await timed(() => (db.engine === "pg" ? connectOnce(db, PG_PING_TIMEOUT_MS) : connectOnceSqlite(db)));
  const simple_query = await timed(async () => (await db.q.select({ n: count() }).from(sites))[0]!.n);
  const coverage_query = await timed(async () => {
    const days = new Set<string>();
    let withData = 0;
    for (const { id } of await db.q.select({ id: sites.id }).from(sites)) {
      const found = await findDataDays(db, id);
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

/** The driver's message of a failure (Drizzle wraps it: "Failed query: …" with the cause inside). */
function errorMessage(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } };
  return String(e?.cause?.message ?? e?.message ?? err);
}
