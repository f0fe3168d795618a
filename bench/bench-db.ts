// A migrated database for a bench script: a fresh SQLite file in a temp folder, or the PostgreSQL database at
// `url` (migrated first). `cleanup` closes it (and removes the SQLite folder).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDb, openPgDb, type Db } from "../src/db/index.ts";
import { migratePg } from "../src/db/pg/migrate.ts";
import { migrate } from "../src/db/sqlite/migrate.ts";

/** Opens (and migrates) the bench's database: PostgreSQL at `url` when given, else a new SQLite file named by `prefix`. */
export async function openBenchDb(url: string | undefined, prefix: string): Promise<{ db: Db; cleanup: () => Promise<void> | void }> {
  if (url) {
    await migratePg(url);
    const db = openPgDb({ url, role: "test" });
    return { db, cleanup: () => db.close() };
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = join(dir, "app.db");
  migrate(path);
  const db = openDb({ path, role: "test" });
  return {
    db,
    cleanup: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
