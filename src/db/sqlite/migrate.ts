import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";
import { describeTarget, type Config } from "../../config.ts";
import { migratePg } from "../pg/migrate.ts";
import { openConnection, defaultPragmas, pragmasFrom, type Pragmas } from "./open.ts";
import { describeStartError } from "../start-errors.ts";

export const migrationsFolder = join(import.meta.dir, "../../../migrations/sqlite");
const table = "__drizzle_migrations";

type ForeignKeyViolation = { table: string; rowid: number | null; parent: string; fkid: number };

/**
 * Applies pending drizzle-kit migrations to the file; returns how many ran.
 * Same bookkeeping table as drizzle-kit's own `migrate`, so either tool can be used on a file. Unlike
 * drizzle's bun-sqlite migrator it reads the applied list under BEGIN IMMEDIATE, so processes
 * starting at once serialize instead of racing (the loser waits, then finds nothing to do).
 */
export function migrate(path: string, pragmas: Pragmas = defaultPragmas, folder = migrationsFolder): number {
  const migrations = readMigrationFiles({ migrationsFolder: folder });
  const sqlite = openConnection(path, pragmas, { create: true });
  try {
    // drizzle-kit rebuilds a table (create new, copy, DROP old, rename) between PRAGMA foreign_keys=OFF/ON,
    // but that pragma is a no-op inside a transaction: with foreign keys on, DROP TABLE would cascade and
    // delete every child row. So keys are off for the whole run and checked once before COMMIT instead.
    sqlite.run("PRAGMA foreign_keys = OFF");
    sqlite.run("BEGIN IMMEDIATE");
    try {
      sqlite.run(`CREATE TABLE IF NOT EXISTS "${table}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
      const last = sqlite.query<{ created_at: number }, []>(`SELECT created_at FROM "${table}" ORDER BY created_at DESC LIMIT 1`).get();
      let applied = 0;
      for (const m of migrations) {
        if (last && Number(last.created_at) >= m.folderMillis) continue;
        for (const stmt of m.sql) if (stmt.trim()) sqlite.run(stmt);
        sqlite.run(`INSERT INTO "${table}" ("hash", "created_at") VALUES (?, ?)`, [m.hash, m.folderMillis]);
        applied++;
      }
      // Only after changes: the check scans every table, too slow for each start of a large file.
      const violations = applied > 0 ? sqlite.query<ForeignKeyViolation, []>("PRAGMA foreign_key_check").all() : [];
      if (violations.length > 0) {
        const shown = violations
          .slice(0, 5)
          .map((v) => `${v.table} rowid ${v.rowid} -> ${v.parent}`)
          .join(", ");
        throw new Error(
          `migrations rolled back: they leave ${violations.length} row(s) whose foreign key points at no row (${shown}${violations.length > 5 ? ", ..." : ""})`,
        );
      }
      sqlite.run("COMMIT");
      return applied;
    } catch (err) {
      if (sqlite.inTransaction) sqlite.run("ROLLBACK");
      throw err;
    }
  } finally {
    sqlite.run("PRAGMA foreign_keys = ON");
    sqlite.close();
  }
}

/** Brings the configured database (SQLite file or PostgreSQL server) to the current schema; how many migrations ran. */
export async function migrateConfigured(config: Config): Promise<number> {
  if (config.database.dialect === "postgres") return migratePg(config.database.url);
  return migrate(config.database.path, pragmasFrom(config));
}

/** Migrates the configured database; a failure (unusable path, full disk, server down...) prints one line and exits 1. */
export async function migrateOrExit(config: Config): Promise<number> {
  try {
    return await migrateConfigured(config);
  } catch (err) {
    console.error(`fatal: ${describeStartError(err, describeTarget(config.database))}`);
    process.exit(1);
  }
}
