import { readdirSync, readFileSync } from "node:fs";

// CPU time used by a process and all its descendants, read from /proc (Linux). The benchmark divides
// it by the requests served: a cost per request that other load on the machine disturbs far less
// than requests per second.

// Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build.
const TICKS_PER_SECOND = 100;

/** The direct children of a process (Linux /proc; empty once it is gone). */
export function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (list) for (const c of list.split(" ")) out.push(Number(c));
    }
  } catch {
    // The process is gone.
  }
  return out;
}

function ownCpuTicks(pid: number, exited: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields are counted after its closing ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime + stime; with `exited`, also cutime + cstime: the time of its children that exited (and were waited for).
    return Number(fields[11]) + Number(fields[12]) + (exited ? Number(fields[13]) + Number(fields[14]) : 0);
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) used so far by `pid` and its live descendants; null where /proc is missing.
 * `exitedChildren`: plus the descendants that exited, for a tree whose children come and go (a PostgreSQL
 * server's backends end when a pool closes an idle connection: their time must not vanish from the sum).
 */
export function treeCpuSeconds(pid: number, opts: { exitedChildren?: boolean } = {}): number | null {
  if (process.platform !== "linux") return null;
  let ticks = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    ticks += ownCpuTicks(p, opts.exitedChildren ?? false);
    stack.push(...children(p));
  }
  return ticks / TICKS_PER_SECOND;
}

/** What backendCpu needs of a PostgreSQL client (node-postgres' Client). */
type SqlClient = { query(text: string, values: unknown[]): Promise<{ rows: { pid: number }[] }> };

/** CPU seconds so far of the backends connected to database `name` (their /proc stat; a backend gone meanwhile counts 0). */
export async function backendCpu(admin: SqlClient, name: string): Promise<Map<number, number>> {
  // Client backends only: an autovacuum worker on the same database is not the request's work.
  const pids = (
    await admin.query(
      "select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()",
      [name],
    )
  ).rows;
  const out = new Map<number, number>();
  for (const { pid } of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(pid, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // Ended meanwhile.
    }
  }
  return out;
}

/** The CPU the backends used between two readings (a backend that started meanwhile counts from 0). */
export function backendDelta(before: Map<number, number>, after: Map<number, number>): number {
  let d = 0;
  for (const [pid, cpu] of after) d += cpu - (before.get(pid) ?? 0);
  return d;
}
