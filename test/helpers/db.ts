import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDb, type Db, type OpenOptions } from "../../src/db/index.ts";
import { migrate } from "../../src/db/migrate.ts";

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "sitesync-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A migrated database file in a temp dir with one open handle; cleanup closes and deletes it. */
export function tempDb(opts: Partial<OpenOptions> = {}) {
  const { dir, cleanup } = tempDir();
  const path = join(dir, "app.db");
  migrate(path);
  const handles: Db[] = [];
  const open = (o: Partial<OpenOptions> = {}) => {
    const db = openDb({ path, role: "test", ...opts, ...o });
    handles.push(db);
    return db;
  };
  const db = open();
  return {
    db,
    path,
    dir,
    /** Opens another handle on the same file, as a second process would. */
    open,
    cleanup() {
      for (const h of handles) h.close();
      cleanup();
    },
  };
}
