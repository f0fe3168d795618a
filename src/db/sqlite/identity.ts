import { statSync } from "node:fs";

// A database file deleted or replaced under a running process goes unnoticed by SQLite: the open
// connections keep writing to the old inode, acknowledged writes vanish at the next start, and a new
// connection (or a restarted worker) opens the other file. So every process remembers which file it
// opened (device + inode) and checks that the path still names it.

/** `dev:ino` of the file at `path`, or null when there is none. */
export function fileIdentity(path: string): string | null {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

export type FileGuard = {
  /** The identity remembered at open. */
  readonly expected: string;
  /**
   * Why the path no longer names the file opened (null: it still does). Stats the path when the last
   * look is older than `maxAgeMs` (0: now). A mismatch is final: the process must not go on writing.
   */
  problem(maxAgeMs?: number): string | null;
};

/**
 * A test of "the path still names the file `expected`" that is cheaper than fileIdentity: a stat in numbers (no
 * BigInts, no string), exact while the expected device and inode are safe integers (a number past them is rounded to
 * at least 2^53, so it never equals one below), else fileIdentity itself. Run after every commit (engine.ts).
 */
function sameFileTest(path: string, expected: string): () => boolean {
  const [dev, ino] = expected.split(":").map((v) => Number(v));
  if (!Number.isSafeInteger(dev) || !Number.isSafeInteger(ino)) return () => fileIdentity(path) === expected;
  return () => {
    try {
      const s = statSync(path, { throwIfNoEntry: false });
      return s !== undefined && s.ino === ino && s.dev === dev;
    } catch {
      // Any other failure (a directory made unreadable, a component that is not one): fileIdentity says what it is.
      return false;
    }
  };
}

/** Remembers the identity of the file at `path` (or `expected`, when a parent process opened it first). */
export function guardFile(path: string, expected: string | null = fileIdentity(path)): FileGuard {
  if (expected === null) throw new Error(`${path} does not exist`);
  const same = sameFileTest(path, expected);
  let checkedAt = -Infinity;
  let problem: string | null = null;
  return {
    expected,
    problem(maxAgeMs = 0) {
      if (problem !== null) return problem;
      const now = performance.now();
      if (now - checkedAt < maxAgeMs) return null;
      checkedAt = now;
      if (same()) return null;
      const actual = fileIdentity(path);
      if (actual === null) problem = `the database file ${path} was deleted while in use`;
      else if (actual !== expected)
        problem = `the database file ${path} was replaced by another file while in use (device:inode ${expected} became ${actual})`;
      return problem;
    },
  };
}
