import { closeSync, copyFileSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { seedAnalytics, type SeedResult } from "../../bench/seed-analytics.ts";
import { isAlive } from "../../src/db/pid.ts";

// seedAnalytics' rows for several test files of one run (analytics.stream and bounds.load both seed 120,000 rows over
// 30 days on SQLite: ~2.6 s of CPU each): the first file of the run to ask seeds a file in the run's folder once, and
// every file gets a copy of it (the SQLite side of test/helpers/seeded-pg.ts). The runner removes its folder, and the
// file with it, at the end of the run.

/** The runner's folder of this run (each file's TMPDIR is a folder inside it: scripts/test-tmp.ts), or null outside it. */
function runDir(): string | null {
  const parent = dirname(tmpdir());
  return basename(parent).startsWith("sitesync-run-") ? parent : null;
}

/**
 * Writes at `path` a migrated SQLite file holding `seedAnalytics(path, opts)`'s rows, and returns the seed's result:
 * a copy of the run's seeded file when another file of the run made it. Outside the runner it is seeded here.
 */
export async function seededSqliteFile(path: string, opts: { rows: number; days: number }): Promise<SeedResult> {
  const dir = runDir();
  if (!dir) return seedAnalytics(path, opts);
  const shared = join(dir, `seed-sqlite-${opts.rows}-${opts.days}.db`);
  // The seed's result, written last: a file without it was not seeded to the end.
  const result = `${shared}.json`;
  const lock = `${shared}.lock`;
  // A bound for a holder that never wrote its pid: then this file seeds its own.
  const giveUp = Date.now() + 180_000;
  for (;;) {
    if (existsSync(result)) {
      copyFileSync(shared, path);
      return JSON.parse(readFileSync(result, "utf8")) as SeedResult;
    }
    let fd: number;
    try {
      fd = openSync(lock, "wx");
    } catch {
      // Another file seeds it: wait for its result, or take over once its process is gone.
      let holder = 0;
      try {
        holder = Number(readFileSync(lock, "utf8") || 0);
      } catch {
        // Gone meanwhile: its result is there, or the lock is free again.
      }
      if (holder > 0 && !isAlive(holder)) rmSync(lock, { force: true });
      if (Date.now() > giveUp) return seedAnalytics(path, opts);
      await Bun.sleep(100);
      continue;
    }
    writeFileSync(fd, String(process.pid));
    closeSync(fd);
    try {
      const seed = await seedAnalytics(path, opts);
      // seedAnalytics checkpoints and closes its connection: the file holds every page (no WAL beside it).
      copyFileSync(path, `${shared}.tmp`);
      renameSync(`${shared}.tmp`, shared);
      writeFileSync(`${result}.tmp`, JSON.stringify(seed));
      renameSync(`${result}.tmp`, result);
      return seed;
    } finally {
      rmSync(lock, { force: true });
    }
  }
}
