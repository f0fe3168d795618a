import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDb, openPgDb, whenClosed, type Db, type OpenOptions, type SqliteDb } from "../../src/db/index.ts";
import { migrate } from "../../src/db/sqlite/migrate.ts";
import { newPgDatabase, testEngine } from "./engine.ts";

export { testEngine } from "./engine.ts";

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "sitesync-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A migrated database with one open handle, on the engine the suite tests (see engine.ts): a file in a
 * temp dir, or a fresh PostgreSQL database. `databaseUrl` is what a server or CLI takes as DATABASE_URL;
 * `path` is the file (SQLite only). cleanup closes every handle and deletes the database.
 */
export function tempDb(opts: Partial<OpenOptions> = {}) {
  return testEngine === "pg" ? tempPgDb(opts) : tempSqliteDb(opts);
}

/** PostgreSQL: of `opts`, only heartbeatMs is used (the others are SQLite's). */
function tempPgDb(opts: Partial<OpenOptions> = {}) {
  const { dir, cleanup } = tempDir();
  const pgdb = newPgDatabase();
  const handles: Db[] = [];
  const open = (o: Partial<OpenOptions> = {}) => {
    const db = openPgDb({ url: pgdb.url, role: "test", poolSize: 4, heartbeatMs: o.heartbeatMs ?? opts.heartbeatMs });
    handles.push(db);
    return db;
  };
  const db = open();
  return {
    db,
    databaseUrl: pgdb.url,
    get path(): string {
      throw new Error("tempDb().path is the SQLite file: this test is SQLite-only (scripts/test.ts lists those)");
    },
    dir,
    open,
    async cleanup() {
      for (const h of handles) h.close();
      await Promise.all(handles.map((h) => h.pg?.pool.end().catch(() => {})));
      pgdb.drop();
      cleanup();
    },
  };
}

let sqliteTemplate: string | null = null;

/**
 * A file migrated once per test process (removed at its exit), copied for each tempSqliteDb: a copy
 * costs ~1 ms of CPU, migrating ~30 ms. migrate() closes its connection last, so the file holds every page (no WAL).
 */
function migratedSqliteTemplate(): string {
  if (sqliteTemplate) return sqliteTemplate;
  const dir = mkdtempSync(join(tmpdir(), "sitesync-template-"));
  const path = join(dir, "template.db");
  migrate(path);
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  sqliteTemplate = path;
  return path;
}

/** Writes a migrated SQLite file at `path` (a copy of this process's migrated template: no migration to run). */
export function migratedSqliteFile(path: string): void {
  copyFileSync(migratedSqliteTemplate(), path);
}

/** A migrated SQLite file in a temp dir with one open handle; cleanup closes and deletes it. */
export function tempSqliteDb(opts: Partial<OpenOptions> = {}) {
  const { dir, cleanup } = tempDir();
  const path = join(dir, "app.db");
  migratedSqliteFile(path);
  const handles: Db[] = [];
  const open = (o: Partial<OpenOptions> = {}) => {
    const db = openDb({ path, role: "test", ...opts, ...o });
    handles.push(db);
    return db;
  };
  const db = open();
  return {
    db,
    databaseUrl: path,
    path,
    dir,
    /** Opens another handle on the same file, as a second process would. */
    open,
    async cleanup() {
      for (const h of handles) h.close();
      // Their query processes collected before the files go (and before this process may exit).
      await Promise.all(handles.map(whenClosed));
      cleanup();
    },
  };
}

/** The handle as a SQLite one, for SQLite-only tests (skipped on PostgreSQL); throws on PostgreSQL. */
export function asSqlite(db: Db): SqliteDb {
  if (db.engine !== "sqlite") throw new Error("a SQLite-only test ran on PostgreSQL (skip it there)");
  return db;
}
