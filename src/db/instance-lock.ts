import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive } from "./pid.ts";

// One instance per database file and per port. A supervisor owns two lock files for its lifetime:
// `<database>.lock` next to the file, and one per host:port in the temp folder. Each holds the owner's
// pid (and its start time, so a pid reused after a reboot does not look alive). A lock whose owner is
// gone is taken over; a live one makes the start fail with one line. Several instances on one file
// (each on its own port) are allowed only with --allow-shared-database: they then share the database
// lock, and a later start without the flag is still refused.

export type LockInfo = { pid: number; started: string | null; port: number; host: string; database: string; shared: boolean; at: string };

export type InstanceLock = {
  path: string;
  /** Null while the lock file still names this process (recreated if someone deleted it), else why not. */
  verify(): string | null;
  release(): void;
};

/** Start time of a process (clock ticks since boot, from /proc), to tell a pid reused later apart. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22; the command name (field 2) may contain spaces, so count from the closing parenthesis.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** True when the lock's owner is still running (same pid, same start time). */
function ownerAlive(info: LockInfo): boolean {
  if (!isAlive(info.pid)) return false;
  const started = processStartTime(info.pid);
  return info.started === null || started === null || started === info.started;
}

function readLock(path: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LockInfo;
  } catch {
    return null;
  }
}

/**
 * Creates `path` with `info` only if it does not exist, whole: written to a file of this process's first and then
 * hard-linked to `path` (atomic, fails if it exists), so another starter never reads it empty or half-written and
 * takes it for garbage (three supervisors starting at once on one shared file did). Where hard links are not
 * supported, an O_EXCL create and a write.
 */
function createExclusive(path: string, info: LockInfo): boolean {
  const text = JSON.stringify(info);
  const tmp = `${path}.new-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    linkSync(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EXDEV") throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

export class InstanceLockedError extends Error {}

/**
 * Takes the lock file at `path` for this process, or throws InstanceLockedError naming the live
 * owner. `shared`: a live owner that is also shared is no obstacle (the lock stays theirs; null is
 * returned). `sharable` false: the lock is never shared (a port), and the refusal gives no such hint.
 */
export function acquireLock(
  path: string,
  what: string,
  info: Omit<LockInfo, "pid" | "started" | "at">,
  opts: { sharable: boolean } = { sharable: true },
): InstanceLock | null {
  const mine: LockInfo = { ...info, pid: process.pid, started: processStartTime(process.pid), at: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (createExclusive(path, mine)) return held(path, mine);
    const owner = readLock(path);
    if (owner && owner.pid !== process.pid && ownerAlive(owner)) {
      if (info.shared && owner.shared) return null;
      const hint = !opts.sharable
        ? ""
        : !info.shared
          ? "; to run several instances on one database, each on its own port, start every one with --allow-shared-database"
          : owner.shared
            ? ""
            : "; it was started without --allow-shared-database";
      throw new InstanceLockedError(
        `${what} is already served by sitesync pid ${owner.pid} (port ${owner.port}, database ${owner.database}; lock file ${path})${hint}`,
      );
    }
    // Stale (owner gone) or unreadable: move it aside atomically, so two starters taking over at
    // once cannot both delete each other's fresh lock; the loser's O_EXCL create then fails.
    const aside = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, aside);
      unlinkSync(aside);
    } catch {
      // Someone else moved it first: try again.
    }
  }
  throw new InstanceLockedError(`could not take the lock file ${path}: it keeps changing (another instance starting at the same moment?)`);
}

/** What tells one version of a file from another without reading it: its inode, size and change time (ns). */
function versionOf(path: string): string | null {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}` : null;
}

function held(path: string, mine: LockInfo): InstanceLock {
  let released = false;
  // The file's version when it last named this process: while it is unchanged, a check is one stat instead of
  // reading and parsing it (the supervisor checks both its locks every 100 ms).
  let seen: string | null = null;
  return {
    path,
    verify() {
      if (released) return null;
      const version = versionOf(path);
      if (version !== null && version === seen) return null;
      const now = readLock(path);
      if (now === null) {
        // Deleted by hand: put it back rather than leave the next start unprotected.
        if (!createExclusive(path, mine)) return this.verify();
        return null;
      }
      if (now.pid === mine.pid && now.started === mine.started) {
        // Stat before reading: a change after the stat gives another version at the next check, never a missed one.
        seen = version;
        return null;
      }
      return `the lock file ${path} now belongs to pid ${now.pid}`;
    },
    release() {
      if (released) return;
      released = true;
      const now = readLock(path);
      if (now?.pid === mine.pid && now.started === mine.started) {
        try {
          unlinkSync(path);
        } catch {
          // Gone already.
        }
      }
    },
  };
}

/** The lock file of a database file. */
export function databaseLockPath(dbPath: string): string {
  return `${dbPath}.lock`;
}

/** The lock file of a host:port (in the temp folder, where every instance on this machine looks). */
export function portLockPath(host: string, port: number): string {
  return join(tmpdir(), `sitesync-port-${host.replace(/[^a-zA-Z0-9.-]/g, "_")}-${port}.lock`);
}

/**
 * Null when nothing listens on host:port, else why the port is taken. Binds without SO_REUSEPORT
 * for a moment: that fails while any socket (ours with reusePort or another program's) listens.
 */
export function portProblem(host: string, port: number): string | null {
  try {
    const s = Bun.listen({ hostname: host, port, socket: { data() {} } });
    s.stop(true);
    return null;
  } catch (err) {
    return `port ${port} on ${host} already has a listener (${(err as Error).message}); is another sitesync or another program running there?`;
  }
}
