import { isBusyError } from "../../errors.ts";
import type { SqliteDb } from "../index.ts";
import { openConnection } from "./open.ts";

// Diagnostics of an SQLite file: its header, the connection's pragmas and the one write lock.

/** Reads the database header; false when the file holds no schema. Throws when it cannot be read. */
export function pingSqlite(db: SqliteDb): boolean {
  // Not `select 1`: that never opens the file. A migrated database has a schema version above 0.
  return (db.raw.reader.query<{ schema_version: number }, []>("PRAGMA schema_version").get()?.schema_version ?? 0) > 0;
}

/** The connection's effective pragma settings. */
export function pragmaSettings(db: SqliteDb) {
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

/** `PRAGMA database_list`: the files attached to the connection. */
export function databaseList(db: SqliteDb) {
  return db.raw.reader.query<{ seq: number; name: string; file: string }, []>("PRAGMA database_list").all();
}

/** How long a lock probe's answer is reused: check-locks must not be a way to slow writers down. */
const LOCK_PROBE_TTL_MS = 1000;
const lockProbes = new WeakMap<SqliteDb, { at: number; free: boolean }>();

/**
 * Whether no process held the write lock, probed without waiting at most once a second per process
 * (taking the lock even for a moment makes every writer of every process wait); `age_ms` says how
 * old the answer is.
 */
export function isWriteLockFree(db: SqliteDb): { free: boolean; age_ms: number } {
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

/** Opens the existing file (never creates one, and not at all when the path names another file) and closes it. */
export function connectOnceSqlite(db: SqliteDb): void {
  const changed = db.guard.problem(0);
  if (changed) throw new Error(changed);
  openConnection(db.path, db.pragmas).close();
}
