// A throw-away PostgreSQL cluster in a temp dir on a free port, from Debian's `postgresql` binaries
// (/usr/lib/postgresql/<version>/bin). Used by test/helpers/postgres.ts and by .ci/run:
//   bun scripts/pg-cluster.ts start --owner <pid>     prints the cluster's directory, then its URL, one per line
//   bun scripts/pg-cluster.ts stop <dir>              stops it and removes the directory
// initdb refuses to run as root, so as root every command runs as the `postgres` user (runuser).
// A cluster whose owner process is gone (a test run killed before its afterAll) is removed by the next start.
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/free-port.ts";

const PG_ROOT = "/usr/lib/postgresql";
const PREFIX = "sitesync-pg-";
/** The longest Unix socket path (sockaddr_un's sun_path, 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;
/** The file holding the pid of the process a folder belongs to (see orphanedDirs). */
export const OWNER_FILE = "owner.pid";

export type Cluster = { dir: string; url: string; port: number };

/** The bin directory of the newest installed PostgreSQL with initdb and pg_ctl, or null. */
export function findPgBin(root = PG_ROOT): string | null {
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, "bin", "initdb")) && existsSync(join(root, v, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

const isRoot = () => process.getuid?.() === 0;

/** The command as it must run: as root, through runuser as the postgres user (initdb refuses root). */
function asClusterOwner(cmd: string[]): string[] {
  return isRoot() ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
}

function run(cmd: string[], what: string): string {
  const r = Bun.spawnSync(asClusterOwner(cmd), { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString() + r.stderr.toString();
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode}): ${out.trim()}`);
  return out;
}

/** The postgres user's uid and gid (root must hand it the cluster directory). */
function postgresUser(): { uid: number; gid: number } {
  const ids = ["-u", "-g"].map((flag) => Number(Bun.spawnSync(["id", flag, "postgres"]).stdout.toString().trim()));
  if (!ids.every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error("running as root needs the 'postgres' user that Debian's postgresql package creates");
  }
  return { uid: ids[0]!, gid: ids[1]! };
}

/**
 * Creates and starts a cluster: trust auth for the `postgres` superuser, listening on 127.0.0.1 only (and a
 * socket in its own dir), C locale (text sorts byte-wise, as SQLite's BINARY), no fsync (it is thrown away).
 * `settings` override the server settings below (e.g. the benchmark turns fsync back on).
 */
export function startCluster(
  opts: { bin?: string; parent?: string; ownerPid?: number; settings?: Record<string, string | number> } = {},
): Cluster {
  const bin = opts.bin ?? findPgBin();
  if (!bin) throw new Error(`no PostgreSQL binaries under ${PG_ROOT} (apt-get install -y postgresql)`);
  const parent = opts.parent ?? tmpdir();
  reapOrphanedClusters(parent, bin);
  const dir = mkdtempSync(join(parent, PREFIX));
  try {
    writeFileSync(join(dir, OWNER_FILE), String(opts.ownerPid ?? process.pid));
    if (isRoot()) {
      const { uid, gid } = postgresUser();
      chownSync(dir, uid, gid);
    }
    const data = join(dir, "data");
    run(
      [join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"],
      "initdb",
    );
    // The port is free when picked but may be taken before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = freePort();
      const settings = {
        listen_addresses: "127.0.0.1",
        fsync: "off",
        synchronous_commit: "off",
        full_page_writes: "off",
        // Not more: the server's CPU for bounds, bounds.load and analytics.stream (2026-12-07, alternated, load 15-24) was
        // 14.8-18.1 s at 32 MB (4 runs), 17.9 / 19.7 at 128 MB, 16.8 / 14.5 at 16 MB (a guess at why: each backend
        // faults in every shared page it touches, and a bigger pool is spread wider).
        shared_buffers: "32MB",
        // Every process of a test server pools PG_POOL_SIZE connections; two instances of 4 workers each, plus
        // the tests' own pools, pass 100.
        max_connections: 400,
        ...opts.settings,
      };
      // A Unix socket's path holds at most 107 bytes: a cluster deep in a test's temp folder (a runner group's folder is
      // named after its first file) could not start at all. Its socket is left out then; every client uses TCP.
      const socketDir = join(dir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH ? dir : "''";
      const options = [`-p ${port}`, `-k ${socketDir}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(" ");
      try {
        run([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "-o", options, "start"], "pg_ctl start");
        return { dir, port, url: `postgres://postgres@127.0.0.1:${port}/postgres` };
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Stops the cluster in `dir` at once (its data is thrown away) and removes the directory. */
export function stopCluster(dir: string, bin = findPgBin()): void {
  const data = join(dir, "data");
  if (bin && existsSync(join(data, "postmaster.pid"))) {
    run([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], "pg_ctl stop");
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Stops the server of a cluster, keeping its data (fault tests): `immediate` is a crash (no checkpoint,
 * recovery at the next start), `fast` a clean shutdown that terminates sessions.
 */
export async function stopServer(c: Cluster, mode: "immediate" | "fast", bin = findPgBin()): Promise<void> {
  if (!bin) throw new Error(`no PostgreSQL binaries under ${PG_ROOT}`);
  await runAsync([join(bin, "pg_ctl"), "-D", join(c.dir, "data"), "-m", mode, "-w", "-t", "60", "stop"], "pg_ctl stop");
}

/** Starts a cluster's server again after stopServer, with the options it had (from postmaster.opts), on its port. */
export async function startServer(c: Cluster, bin = findPgBin()): Promise<void> {
  if (!bin) throw new Error(`no PostgreSQL binaries under ${PG_ROOT}`);
  const data = join(c.dir, "data");
  // postmaster.opts: the server's last command line, every argument quoted: postgres "-D" "<data>" "-p" ...
  const args = [...readFileSync(join(data, "postmaster.opts"), "utf8").matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  const options = args.slice(args.indexOf("-D") + 2).join(" ");
  await runAsync(
    [join(bin, "pg_ctl"), "-D", data, "-l", join(c.dir, "server.log"), "-w", "-t", "60", "-o", options, "start"],
    "pg_ctl start",
  );
}

/** run() without blocking the event loop (a test's clients keep going meanwhile). */
async function runAsync(cmd: string[], what: string): Promise<void> {
  const p = Bun.spawn(asClusterOwner(cmd), { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${(out + err).trim()}`);
}

/** Stops and removes the clusters under `parent` whose owner process no longer exists. */
function reapOrphanedClusters(parent: string, bin: string) {
  for (const dir of orphanedDirs(parent, PREFIX)) {
    try {
      stopCluster(dir, bin);
    } catch {
      // Another start may be reaping it at the same moment.
    }
  }
}

/**
 * The folders under `parent` named `prefix*` whose owner (the pid in their owner.pid) no longer runs; folders
 * without a readable owner.pid (being created right now, or not ours) are left alone. Also scripts/test-tmp.ts.
 */
export function orphanedDirs(parent: string, prefix: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(parent, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), "utf8"));
    } catch {
      continue;
    }
    if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) found.push(dir);
  }
  return found;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

if (import.meta.main) {
  const [cmd, dir] = process.argv.slice(2);
  try {
    if (cmd === "start") {
      // The cluster belongs to the process that asked for it (.ci/run passes its own $$), not to this one:
      // once that process is gone, the next start removes the cluster.
      const owner = process.argv[3] === "--owner" ? Number(process.argv[4]) : NaN;
      if (!Number.isInteger(owner) || owner <= 0) throw new Error("start needs --owner <pid of the process that stops the cluster>");
      const c = startCluster({ ownerPid: owner });
      console.log(c.dir);
      console.log(c.url);
    } else if (cmd === "stop" && dir) {
      stopCluster(dir);
    } else {
      console.error("usage: bun scripts/pg-cluster.ts start --owner <pid> | stop <dir>");
      process.exit(2);
    }
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
