import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive } from "../src/db/pid.ts";

// Each test file's whole CPU, wherever its processes end up (scripts/test.ts). A file's `bun test` process counts only
// the processes it reaped: what a test started that outlived it or was re-parented (chromium's zygote and renderers,
// 30 s of a PostgreSQL ui.browser run's 60, workers of a SIGKILLed supervisor) was in no file's figure. Where this
// process may make cgroups of cgroup v1's `cpuacct` (root on the CI machine; TEST_CGROUPS=0 in scripts/test.ts: never),
// each file runs in one of its own, which counts every process started in it until it ends, and whatever is still in
// it when the file ends is killed.
//
// Where cgroup v1's `cpu` controller may be used too, a file may run with the CPU first (`priority`): its cgroup there has
// the largest cpu.shares, so its processes get whatever CPU they ask for, as if nothing else ran, and the other files
// get only what it leaves. The timing-sensitive files (scripts/test.ts `runAlone`) run so beside the others, instead of
// one at a time at the run's end with a core idle.

const V1 = "/sys/fs/cgroup/cpuacct";
const CPU_V1 = "/sys/fs/cgroup/cpu";
/** cpu.shares' largest value (the kernel's MAX_SHARES): each process outside has 1,024, or its autogroup has. */
const PRIORITY_SHARES = 262_144;

/**
 * The run's cgroup folder (made by `startCgroups`), null where cgroups cannot be made; `cpuDir`, the run's folder of the
 * `cpu` controller for files run with priority (its cpu.shares the largest), null where that cannot be made.
 */
export type Cgroups = { dir: string; cpuDir: string | null } | null;

/** A cgroup folder for this run's files, or null (no cgroup v1 `cpuacct`, or not allowed). */
export function startCgroups(runnerPid = process.pid): Cgroups {
  if (!existsSync(join(V1, "cpuacct.usage"))) return null;
  // Runs killed before their end leave their folders: removed here (each once empty), a live runner's kept.
  for (const old of readdirSync(V1).filter((n) => n.startsWith("sitesync-test-") && !isAlive(Number(n.slice(14)))))
    removeCgroup(join(V1, old));
  const dir = join(V1, `sitesync-test-${runnerPid}`);
  try {
    mkdirSync(dir);
  } catch {
    return null;
  }
  return { dir, cpuDir: priorityCgroup(runnerPid) };
}

/** The run's folder of the `cpu` controller with the largest cpu.shares, or null (no cgroup v1 `cpu`, or not allowed). */
function priorityCgroup(runnerPid: number): string | null {
  if (!existsSync(join(CPU_V1, "cpu.shares"))) return null;
  for (const old of readdirSync(CPU_V1).filter((n) => n.startsWith("sitesync-test-") && !isAlive(Number(n.slice(14)))))
    removeCgroup(join(CPU_V1, old));
  const dir = join(CPU_V1, `sitesync-test-${runnerPid}`);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, "cpu.shares"), String(PRIORITY_SHARES));
    return dir;
  } catch {
    removeCgroup(dir);
    return null;
  }
}

/** True where `startCgroups` would give files priority (`--plan` models the runner's lanes by it). */
export function priorityAvailable(): boolean {
  try {
    accessSync(join(CPU_V1, "cpu.shares"), constants.W_OK);
    accessSync(join(V1, "cpuacct.usage"));
    return true;
  } catch {
    return false;
  }
}

/**
 * The command that runs `argv` inside a new cgroup `name` of the run (the shell puts itself in and execs, so every
 * process the file starts is counted), with the cgroup's folder; `argv` unchanged when there are none. With `priority`
 * (and the run's `cpuDir`) also in the run's `cpu` cgroup, whose cpu.shares give it the CPU first (`cpuDir` returned:
 * remove it with `removeCgroup` when the file ends; null otherwise).
 */
export function inCgroup(
  cg: Cgroups,
  name: string,
  argv: string[],
  priority = false,
): { argv: string[]; dir: string | null; cpuDir: string | null } {
  if (!cg) return { argv, dir: null, cpuDir: null };
  const dir = join(cg.dir, name);
  try {
    mkdirSync(dir);
  } catch {
    return { argv, dir: null, cpuDir: null };
  }
  let cpuDir: string | null = null;
  if (priority && cg.cpuDir) {
    try {
      mkdirSync(join(cg.cpuDir, name));
      cpuDir = join(cg.cpuDir, name);
    } catch {
      // Runs without priority.
    }
  }
  // A shell that cannot join runs the file anyway (counted by its tree, as without cgroups).
  const join1 = 'echo $$ 2>/dev/null > "$0/cgroup.procs"';
  if (!cpuDir) return { argv: ["/bin/sh", "-c", `${join1}; exec "$@"`, dir, ...argv], dir, cpuDir };
  return {
    argv: ["/bin/sh", "-c", `${join1}; echo $$ 2>/dev/null > "$1/cgroup.procs"; shift; exec "$@"`, dir, cpuDir, ...argv],
    dir,
    cpuDir,
  };
}

/** The CPU seconds of every process that ran in the cgroup at `dir`. */
export function cgroupCpuS(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "cpuacct.usage"), "utf8")) / 1e9;
  } catch {
    return 0;
  }
}

/** The processes still in the cgroup at `dir`. */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs what is left in the cgroup at `dir` (processes that left the file's process group: chromium's); how many. */
export function killCgroup(dir: string): number {
  let n = 0;
  for (const pid of cgroupPids(dir)) {
    try {
      process.kill(pid, "SIGKILL");
      n++;
    } catch {
      // Gone meanwhile.
    }
  }
  return n;
}

/** Removes the cgroup at `dir` and the ones inside it (each once empty; a cgroup with processes stays). */
export function removeCgroup(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    // Processes still in it, or gone already.
  }
}
