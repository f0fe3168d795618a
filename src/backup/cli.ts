import { loadBackupCommand, orExit } from "../config.ts";
import { backupDirOf, runBackup } from "./backup.ts";

// `bun run backup [--to DIR]`: an online, checked copy of DATABASE_URL's file, also while the service
// runs and writes. Prints the outcome as one JSON line (the supervisor and the API read it); exit 1 on failure.
const config = orExit(() => loadBackupCommand());
const dir = backupDirOf(config.database.path, config.BACKUP_DIR);
const run = runBackup(config.database.path, dir, config.BACKUP_KEEP);
console.log(JSON.stringify(run));
process.exit(run.ok ? 0 : 1);
