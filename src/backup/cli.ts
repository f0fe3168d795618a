import { loadBackupCommand, orExit, sqlitePathOf } from "../config.ts";
import { backupDirOf, runBackup } from "./backup.ts";

// `bun run backup [--to DIR]`: an online, checked copy of DATABASE_URL's file, also while the service
// runs and writes. Prints the outcome as one JSON line (the supervisor and the API read it); exit 1 on failure.
const config = orExit(() => loadBackupCommand());
const path = orExit(() => sqlitePathOf(config.database, "bun run backup"));
const dir = backupDirOf(path, config.BACKUP_DIR);
const run = runBackup(path, dir, config.BACKUP_KEEP);
console.log(JSON.stringify(run));
process.exit(run.ok ? 0 : 1);
