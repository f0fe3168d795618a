// The test runner's temp folders (scripts/test.ts): each run has one folder, each test file's run a folder
// inside it given as its TMPDIR, so whatever a test leaves behind (killed mid-test, or a bug in its cleanup) is
// under a folder the runner owns and removes: tmpfs mounts (disk-full cases), `chattr +i` files (read-only
// database cases), PostgreSQL clusters of their own (pg-cluster, db-faults), lock files, SQLite files.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPgBin, OWNER_FILE, orphanedDirs, stopCluster } from "./pg-cluster.ts";

const RUN_PREFIX = "sitesync-run-";

/**
 * A new folder for one run under the system temp folder, owned by this process (owner.pid). Readable by others:
 * test clusters run as `postgres`. Folders of earlier runs whose runner is gone (SIGKILLed) are removed first.
 */
export function makeRunDir(parent = tmpdir()): string {
  for (const l of reapOrphanedRunDirs(parent)) console.log(`runner cleanup (an earlier run killed): ${l}`);
  const dir = mkdtempSync(join(parent, RUN_PREFIX));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

/** Removes the run folders under `parent` whose runner process no longer exists; returns what it undid. */
export function reapOrphanedRunDirs(parent = tmpdir()): string[] {
  return orphanedDirs(parent, RUN_PREFIX).flatMap((dir) => [`removed ${dir}`, ...removeTestDir(dir)]);
}

/** A folder for one test file's run inside the run's folder (its TMPDIR). */
export function makeUnitDir(runDir: string, name: string): string {
  const dir = join(runDir, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

/** The mount points at or under `dir` (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  let info = "";
  try {
    info = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  // Field 5 is the mount point, with spaces and the like written as octal escapes (\040).
  const points = info
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  return points.filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/** PostgreSQL clusters a test started under `dir` (scripts/pg-cluster.ts folders with a running server). */
function clustersUnder(dir: string, depth = 2): string[] {
  if (depth < 0) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const n of names) {
    const p = join(dir, n);
    if (n.startsWith("sitesync-pg-") && existsSync(join(p, "data", "postmaster.pid"))) found.push(p);
    else if (n.startsWith("sitesync-")) found.push(...clustersUnder(p, depth - 1));
  }
  return found;
}

/**
 * Removes a folder made by makeRunDir/makeUnitDir and everything a test left in it: stops PostgreSQL clusters
 * still running there, unmounts what is mounted under it, clears the immutable flag (`chattr -R -i`) when a plain
 * remove is refused. Returns what it had to undo (printed by the runner: a test that leaks is a bug to mend).
 */
export function removeTestDir(dir: string): string[] {
  const undone: string[] = [];
  if (!existsSync(dir)) return undone;
  for (const c of clustersUnder(dir)) {
    try {
      stopCluster(c, findPgBin());
      undone.push(`stopped the PostgreSQL cluster ${c}`);
    } catch (err) {
      undone.push(`could not stop the PostgreSQL cluster ${c}: ${(err as Error).message}`);
    }
  }
  for (const m of mountsUnder(dir)) {
    const r = Bun.spawnSync(["umount", "-l", m], { stdout: "ignore", stderr: "pipe" });
    undone.push(r.success ? `unmounted ${m}` : `could not unmount ${m}: ${r.stderr.toString().trim()}`);
  }
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // EPERM from a file made immutable (chattr +i): clear the flag under the folder, then remove again.
    Bun.spawnSync(["chattr", "-R", "-f", "-i", dir], { stdout: "ignore", stderr: "ignore" });
    undone.push(`cleared chattr +i under ${dir}`);
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      undone.push(`could not remove ${dir}: ${(err as Error).message}`);
    }
  }
  return undone;
}
