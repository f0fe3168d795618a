import { readFileSync } from "node:fs";
import { join } from "node:path";
import { psql } from "../test/helpers/engine.ts";

// Where the PostgreSQL server's CPU goes during a test run (scripts/test.ts): a file's `cpu` is its own process tree,
// never the server's backends, which do the file's queries, its databases' copies and drops, and start a process for
// each connection. When the server runs on this machine, its processes are sampled every SAMPLE_MS from /proc and each
// backend's CPU is charged to the database it serves, so to the test process that took that database (by name), and
// the server's own processes' (autovacuum, checkpointer, parallel workers) by kind. What the samples miss (backends that
// lived and ended between two, or the unnamed ones' databases) is in the cluster's total, reported as not attributed.

const SAMPLE_MS = 1000;
const HZ = 100;

/** utime + stime (and with `children`, the reaped children's) of a process, in clock ticks; null when it is gone. */
function ticks(pid: number, children = false): number | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  } catch {
    return null;
  }
}

/**
 * What a server process is: the database a backend serves ("postgres: user db host(port) state"), one of the
 * server's own processes ("postgres: autovacuum worker db" -> "autovacuum worker"), or null before it says (a
 * backend still starting: its CPU is charged once it does).
 */
function processOf(pid: number): { db: string } | { own: string } | null {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    const backend = /^postgres: \S+ (\S+) \S+\(\d+\)/.exec(cmd);
    if (backend) return { db: backend[1]! };
    const own = /^postgres: ([a-z]+(?: [a-z]+)?)/.exec(cmd);
    return own ? { own: own[1]! } : null;
  } catch {
    return null;
  }
}

/** The whole machine's busy and total clock ticks since boot (/proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/**
 * Samples the server at `adminUrl` when it is a local cluster this process may read (else null). `ownerOf(db)` names
 * the test process a database belongs to, or "runner" (the maintenance database: the pool's copies and drops), or
 * null when it cannot tell (counted as not attributed).
 */
export function startPgCpuSampler(adminUrl: string, ownerOf: (db: string) => string | null) {
  let postmaster: number;
  try {
    const dir = psql("show data_directory", adminUrl);
    postmaster = Number(readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return null;
  }
  const clusterTicks = () => {
    let t = ticks(postmaster, true) ?? 0;
    for (const pid of children()) t += ticks(pid) ?? 0;
    return t;
  };
  const children = () => {
    try {
      return readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const start = clusterTicks();
  /** Per backend: its database's owner and the ticks charged to it so far. */
  const seen = new Map<number, { owner: string; charged: number }>();
  const perUnit = new Map<string, number>();
  const charge = (owner: string, t: number) => perUnit.set(owner, (perUnit.get(owner) ?? 0) + t);
  /** Charges each process's CPU since the last sample (at the first, only what comes after it). */
  const sample = (first = false) => {
    for (const pid of children()) {
      const t = ticks(pid);
      if (t === null) continue;
      let s = seen.get(pid);
      if (!s) {
        const what = processOf(pid);
        if (what === null) continue;
        s = { owner: "db" in what ? (ownerOf(what.db) ?? "") : `server: ${what.own}`, charged: first ? t : 0 };
        seen.set(pid, s);
      }
      charge(s.owner, t - s.charged);
      s.charged = t;
    }
  };
  sample(true);
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    /** CPU seconds charged to test process `unit` so far. */
    of: (unit: string) => (perUnit.get(unit) ?? 0) / HZ,
    /**
     * Stops sampling: the cluster's CPU seconds since the start, charged to the runner's pool, to the test processes,
     * to the server's own processes (by kind), and not attributed.
     */
    stop() {
      sample();
      clearInterval(timer);
      const total = (clusterTicks() - start) / HZ;
      const runner = (perUnit.get("runner") ?? 0) / HZ;
      const own = [...perUnit].filter(([k]) => k.startsWith("server: ")).map(([k, v]) => [k.slice(8), v / HZ] as const);
      const units =
        [...perUnit].filter(([k]) => k !== "runner" && k !== "" && !k.startsWith("server: ")).reduce((a, [, v]) => a + v, 0) / HZ;
      const server = own.reduce((a, [, v]) => a + v, 0);
      return { total, runner, units, server, own: own.sort((a, b) => b[1] - a[1]), other: total - runner - units - server };
    },
  };
}
