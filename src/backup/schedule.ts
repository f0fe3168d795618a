import { join } from "node:path";
import { childEnv } from "../config.ts";
import { log } from "../log.ts";
import type { BackupRun } from "./backup.ts";

type BackupTarget = { databaseUrl: string; dir: string; keep: number };

/**
 * Runs `bun run backup` in a child process (VACUUM INTO is synchronous: in-process it would stop the
 * event loop for as long as the copy takes) and returns its outcome.
 */
export async function backupInChild(t: BackupTarget): Promise<{ run: BackupRun | null; exitCode: number; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "cli.ts")], {
    env: childEnv({ DATABASE_URL: t.databaseUrl, BACKUP_DIR: t.dir, BACKUP_KEEP: String(t.keep) }),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  let run: BackupRun | null = null;
  try {
    run = JSON.parse(out.trim().split("\n").pop() ?? "") as BackupRun;
  } catch {
    run = null;
  }
  return { run, exitCode, stderr: stderr.trim().slice(0, 500) };
}

/** Makes a backup every `intervalMs`, logging each outcome. Returns the stop function. */
export function startBackupSchedule(t: BackupTarget & { intervalMs: number }) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const { run, exitCode, stderr } = await backupInChild(t);
      if (exitCode === 0 && run?.ok) log("info", "backup made", { file: run.file, duration_ms: run.duration_ms, dir: t.dir });
      else log("error", "backup failed", { exit_code: exitCode, error: run?.error ?? stderr, dir: t.dir });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), t.intervalMs);
  return () => clearInterval(timer);
}
