import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, renameSync, rmSync } from "node:fs";
import { loadRestoreCommand, orExit, sqlitePathOf } from "../config.ts";
import { isAlive } from "../db/process-registry.ts";
import { checkBackupFile } from "./backup.ts";

// `bun run restore FILE`: puts a checked backup in place of DATABASE_URL's file, only while no process
// of the service has it open. The file it replaces is kept beside it (`.pre-restore-<time>`).
const config = orExit(() => loadRestoreCommand());
const target = orExit(() => sqlitePathOf(config.database, "bun run restore"));
const fail = (msg: string): never => {
  console.error(`restore refused: ${msg}`);
  process.exit(1);
};

// Processes of the service record themselves in db_connections and refresh the row every 2 s.
if (existsSync(target)) {
  let running: number[] = [];
  try {
    const db = new Database(target, { readonly: true });
    try {
      const fresh = new Date(Date.now() - 30_000).toISOString();
      const rows = db.query("select pid from db_connections where last_seen_at >= ?").all(fresh) as { pid: number }[];
      running = rows.map((r) => r.pid).filter((pid) => pid !== process.pid && isAlive(pid));
    } finally {
      db.close();
    }
  } catch {
    // Not a database we can read (or no registry yet): nothing can be running on it.
  }
  if (running.length > 0) fail(`the service is running on ${target} (pids ${running.join(", ")}): stop it first`);
}

try {
  checkBackupFile(config.restoreFrom);
} catch (err) {
  fail((err as Error).message);
}

const tmp = `${target}.restore-tmp`;
copyFileSync(config.restoreFrom, tmp);
if (existsSync(target)) {
  const keep = `${target}.pre-restore-${new Date().toISOString().replace(/[-:.]/g, "")}`;
  for (const suffix of ["", "-wal", "-shm"]) if (existsSync(target + suffix)) renameSync(target + suffix, keep + suffix);
  console.log(`previous database kept as ${keep}`);
}
for (const suffix of ["-wal", "-shm"]) rmSync(target + suffix, { force: true });
renameSync(tmp, target);
console.log(`restored ${config.restoreFrom} into ${target}; start the service to apply any newer migrations`);
