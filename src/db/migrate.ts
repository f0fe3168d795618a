import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";
import { openConnection, defaultPragmas, type Pragmas } from "./open.ts";

export const migrationsFolder = join(import.meta.dir, "../../migrations");
const table = "__drizzle_migrations";

/**
 * Applies pending drizzle-kit migrations to the file; returns how many ran.
 * Same bookkeeping table as drizzle-kit's own `migrate`, so either tool can be used on a file. Unlike
 * drizzle's bun-sqlite migrator it reads the applied list under BEGIN IMMEDIATE, so processes
 * starting at once serialize instead of racing (the loser waits, then finds nothing to do).
 */
export function migrate(path: string, pragmas: Pragmas = defaultPragmas, folder = migrationsFolder): number {
  const migrations = readMigrationFiles({ migrationsFolder: folder });
  const sqlite = openConnection(path, pragmas);
  try {
    sqlite.run("BEGIN IMMEDIATE");
    try {
      sqlite.run(`CREATE TABLE IF NOT EXISTS "${table}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
      const last = sqlite
        .query<{ created_at: number }, []>(`SELECT created_at FROM "${table}" ORDER BY created_at DESC LIMIT 1`)
        .get();
      let applied = 0;
      for (const m of migrations) {
        if (last && Number(last.created_at) >= m.folderMillis) continue;
        for (const stmt of m.sql) if (stmt.trim()) sqlite.run(stmt);
        sqlite.run(`INSERT INTO "${table}" ("hash", "created_at") VALUES (?, ?)`, [m.hash, m.folderMillis]);
        applied++;
      }
      sqlite.run("COMMIT");
      return applied;
    } catch (err) {
      if (sqlite.inTransaction) sqlite.run("ROLLBACK");
      throw err;
    }
  } finally {
    sqlite.close();
  }
}
