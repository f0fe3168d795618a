import { Database } from "bun:sqlite";
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { defaults } from "../../config.ts";
import { isBusyError } from "../../errors.ts";
import * as schema from "./schema.ts";

export type Orm = BunSQLiteDatabase<typeof schema>;

/** Connection settings; every one comes from Config so it can be overridden by env. */
export type Pragmas = {
  busyTimeoutMs: number;
  synchronous: "OFF" | "NORMAL" | "FULL" | "EXTRA";
  cacheSize: number;
  mmapSize: number;
  journalSizeLimit: number;
  tempStore: "DEFAULT" | "FILE" | "MEMORY";
  walAutocheckpoint: number;
};

/** Picks the pragma settings out of a Config-like object. */
export function pragmasFrom(c: {
  SQLITE_BUSY_TIMEOUT_MS: number;
  SQLITE_SYNCHRONOUS: Pragmas["synchronous"];
  SQLITE_CACHE_SIZE: number;
  SQLITE_MMAP_SIZE: number;
  SQLITE_JOURNAL_SIZE_LIMIT: number;
  SQLITE_TEMP_STORE: Pragmas["tempStore"];
  SQLITE_WAL_AUTOCHECKPOINT: number;
}): Pragmas {
  return {
    busyTimeoutMs: c.SQLITE_BUSY_TIMEOUT_MS,
    synchronous: c.SQLITE_SYNCHRONOUS,
    cacheSize: c.SQLITE_CACHE_SIZE,
    mmapSize: c.SQLITE_MMAP_SIZE,
    journalSizeLimit: c.SQLITE_JOURNAL_SIZE_LIMIT,
    tempStore: c.SQLITE_TEMP_STORE,
    walAutocheckpoint: c.SQLITE_WAL_AUTOCHECKPOINT,
  };
}

/** The pragma settings of the default configuration. */
export const defaultPragmas: Pragmas = pragmasFrom(defaults);

/** The database file could not be opened in WAL mode; the message says why and what to do. */
export class WalUnavailableError extends Error {}

/** The database file is missing (or cannot be opened) where it must already exist. */
export class DatabaseMissingError extends Error {}

/**
 * Opens one bun:sqlite connection with the pragmas applied and WAL verified. Only `create` (the
 * migrator) makes the file and its folder: every other path opens an existing file, so a process
 * never silently starts a fresh empty database where the real one was deleted or moved.
 */
export function openConnection(path: string, pragmas: Pragmas, opts: { create?: boolean } = {}): Database {
  if (opts.create) mkdirSync(dirname(path), { recursive: true });
  let sqlite: Database;
  try {
    sqlite = new Database(path, { create: opts.create === true, strict: true });
  } catch (err) {
    if (!opts.create && !existsSync(path))
      throw new DatabaseMissingError(
        `the database file ${path} does not exist (run \`bun run migrate\` or start the service to create it)`,
        { cause: err },
      );
    throw err;
  }
  try {
    // busy_timeout first: switching a cold file to WAL needs a lock another process may hold.
    sqlite.run(`PRAGMA busy_timeout = ${pragmas.busyTimeoutMs}`);
    const advice =
      "WAL needs a writable file and directory on a local file system with shared memory (not NFS/SMB); " +
      "several processes cannot share this file safely without it.";
    let mode: string | undefined;
    try {
      mode = sqlite.query<{ journal_mode: string }, []>("PRAGMA journal_mode = WAL").get()?.journal_mode;
    } catch (err) {
      // A busy file is worth retrying; a read-only or unusable one is not.
      if (isBusyError(err)) throw err;
      throw new WalUnavailableError(`SQLite could not switch ${path} to WAL mode (${(err as Error).message}). ${advice}`, {
        cause: err,
      });
    }
    if (mode?.toLowerCase() !== "wal") {
      throw new WalUnavailableError(`SQLite refused WAL mode for ${path} (journal_mode is '${mode}'). ${advice}`);
    }
    sqlite.run(`PRAGMA synchronous = ${pragmas.synchronous}`);
    sqlite.run(`PRAGMA cache_size = ${pragmas.cacheSize}`);
    sqlite.run("PRAGMA foreign_keys = ON");
    sqlite.run(`PRAGMA temp_store = ${pragmas.tempStore}`);
    sqlite.run(`PRAGMA mmap_size = ${pragmas.mmapSize}`);
    sqlite.run(`PRAGMA journal_size_limit = ${pragmas.journalSizeLimit}`);
    sqlite.run(`PRAGMA wal_autocheckpoint = ${pragmas.walAutocheckpoint}`);
  } catch (err) {
    sqlite.close();
    throw err;
  }
  return sqlite;
}

/** Wraps a connection in Drizzle with the project's schema. */
export function wrapOrm(sqlite: Database): Orm {
  return drizzle({ client: sqlite, schema });
}
