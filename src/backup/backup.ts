import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

// Online backups of the SQLite file: VACUUM INTO a temporary name (one read transaction: a consistent
// snapshot holding every commit made before it started, while writers go on), PRAGMA integrity_check on
// the copy, then rename to a name carrying the time. Old backups beyond `keep` are deleted.

const NAME_RE = /^sitesync-(\d{8}T\d{9}Z)\.db$/;
const STATUS_FILE = "last-backup.json";

export type BackupInfo = { file: string; path: string; size_bytes: number; created_at: string };
export type BackupRun = { at: string; ok: boolean; file: string | null; duration_ms: number; error: string | null };

/** Where backups go: BACKUP_DIR, or `backups/` beside the database file. */
export function backupDirOf(dbPath: string, configured?: string): string {
  return resolve(configured ?? join(dirname(dbPath), "backups"));
}

const stamp = (d: Date) => d.toISOString().replace(/[-:.]/g, "");
const fromStamp = (s: string) =>
  `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}.${s.slice(15, 18)}Z`;

/** Throws unless `path` is an intact SQLite file with this service's tables. */
export function checkBackupFile(path: string) {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  let db: Database | undefined;
  try {
    db = new Database(path, { readonly: true });
    const result = db.query("PRAGMA integrity_check").all() as { integrity_check: string }[];
    if (result.length !== 1 || result[0]!.integrity_check !== "ok") {
      throw new Error(
        `integrity_check failed: ${result
          .map((r) => r.integrity_check)
          .slice(0, 5)
          .join("; ")}`,
      );
    }
    const tables = new Set(
      (db.query("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((r) => r.name),
    );
    for (const t of ["__drizzle_migrations", "sites", "sync_tasks"]) {
      if (!tables.has(t)) throw new Error(`not a sitesync database (no ${t} table)`);
    }
  } catch (err) {
    const msg = (err as Error).message;
    throw new Error(msg.startsWith(path) ? msg : `${path}: ${msg}`);
  } finally {
    db?.close();
  }
}

/** Makes one backup of `dbPath` into `dir`, checks it, names it by time and prunes to `keep`. */
export function makeBackup(dbPath: string, dir: string, keep: number): BackupInfo {
  // Backups hold every key hash, sign-in and row: readable by the service's user only.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started = new Date();
  const file = `sitesync-${stamp(started)}.db`;
  const final = join(dir, file);
  const tmp = join(dir, `.${file}.${process.pid}.tmp`);
  if (!existsSync(dbPath)) throw new Error(`${dbPath}: no such database`);
  const src = new Database(dbPath, { readwrite: true, create: false });
  try {
    src.run("PRAGMA busy_timeout = 30000");
    src.run("VACUUM INTO ?", [tmp]);
    chmodSync(tmp, 0o600);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    src.close();
  }
  try {
    checkBackupFile(tmp);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  renameSync(tmp, final);
  pruneBackups(dir, keep);
  return { file, path: final, size_bytes: statSync(final).size, created_at: started.toISOString() };
}

/** The backups in `dir`, newest first. */
export function listBackups(dir: string): BackupInfo[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => NAME_RE.test(f))
    .sort()
    .reverse()
    .map((file) => ({
      file,
      path: join(dir, file),
      size_bytes: statSync(join(dir, file)).size,
      created_at: fromStamp(NAME_RE.exec(file)![1]!),
    }));
}

/** Deletes all but the `keep` newest backups. */
export function pruneBackups(dir: string, keep: number) {
  for (const b of listBackups(dir).slice(keep)) rmSync(b.path, { force: true });
}

/** Records the outcome of a backup run beside the backups (read by GET /api/v1/admin/backups). */
export function recordRun(dir: string, run: BackupRun) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, STATUS_FILE), JSON.stringify(run), { mode: 0o600 });
}

/** The outcome of the last backup run, if any. */
export function lastRun(dir: string): BackupRun | null {
  try {
    return JSON.parse(readFileSync(join(dir, STATUS_FILE), "utf8")) as BackupRun;
  } catch {
    return null;
  }
}

/** Runs makeBackup and records its outcome; returns the outcome (never throws). */
export function runBackup(dbPath: string, dir: string, keep: number): BackupRun & { backup?: BackupInfo } {
  const t0 = performance.now();
  const at = new Date().toISOString();
  try {
    const backup = makeBackup(dbPath, dir, keep);
    const run = { at, ok: true, file: backup.file, duration_ms: Math.round(performance.now() - t0), error: null };
    recordRun(dir, run);
    return { ...run, backup };
  } catch (err) {
    const run = { at, ok: false, file: null, duration_ms: Math.round(performance.now() - t0), error: (err as Error).message };
    try {
      recordRun(dir, run);
    } catch {
      // The directory itself is the problem; the caller reports the error.
    }
    return run;
  }
}
