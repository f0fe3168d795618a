import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, renameSync, rmSync } from "node:fs";
import { loadRestoreCommand, orExit, sqlitePathOf } from "../config.ts";
import { escapeControls } from "../cli/output.ts";
import { isAlive } from "../db/pid.ts";
import { checkBackupFile } from "./backup.ts";
import { activeKeysIn, revokeKeysIn, schemaProblems } from "./verify.ts";

// `bun run restore FILE`: puts a checked backup in place of DATABASE_URL's file, only while no process
// of the service has it open. The file it replaces is kept beside it (`.pre-restore-<time>`). A backup is
// data from outside: its schema must be the migrations' (no planted trigger, view or table), and its active
// keys are listed to be kept (--keep-keys, or y at the prompt) or revoked (--revoke-keys).
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

// Checked and changed on our own copy, so the file cannot change between the checks and the rename.
const tmp = `${target}.restore-tmp`;
copyFileSync(config.restoreFrom, tmp);
const refuse = (msg: string): never => {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(tmp + suffix, { force: true });
  return fail(msg);
};
let problems: string[] = [];
try {
  problems = schemaProblems(tmp);
} catch (err) {
  refuse(`cannot compare its schema with the migrations: ${(err as Error).message}`);
}
if (problems.length > 0) {
  refuse(
    `its schema is not the one the migrations build (${problems.length} difference(s)):\n  ${problems.map(escapeControls).join("\n  ")}`,
  );
}
const keys = activeKeysIn(tmp);
if (keys.length > 0) {
  const list = keys
    .map(
      (k) => `  ${k.id}\t${k.prefix}\t${escapeControls(k.name)}\t${k.scope}\tcreated ${k.created_at}\texpires ${k.expires_at ?? "never"}`,
    )
    .join("\n");
  console.log(`the backup holds ${keys.length} active key(s):\n${list}`);
  let decision = config.keys;
  if (decision === null && process.stdin.isTTY) {
    decision = /^y(es)?$/i.test(prompt("keep these keys active? [y/N]")?.trim() ?? "") ? "keep" : null;
  }
  if (decision === null) {
    refuse(
      "check the keys above, then run again with --keep-keys (they stay valid) or --revoke-keys (all revoked: protected mode until you create one)",
    );
  }
  if (decision === "revoke") {
    try {
      console.log(`revoked ${revokeKeysIn(tmp)} key(s) and every dashboard session in the restored copy`);
    } catch (err) {
      refuse((err as Error).message);
    }
  }
}
if (existsSync(target)) {
  const keep = `${target}.pre-restore-${new Date().toISOString().replace(/[-:.]/g, "")}`;
  for (const suffix of ["", "-wal", "-shm"]) if (existsSync(target + suffix)) renameSync(target + suffix, keep + suffix);
  console.log(`previous database kept as ${keep}`);
}
for (const suffix of ["-wal", "-shm"]) rmSync(target + suffix, { force: true });
renameSync(tmp, target);
console.log(`restored ${config.restoreFrom} into ${target}; start the service to apply any newer migrations`);
