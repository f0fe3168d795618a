import { dlopen, ptr } from "bun:ffi";
import { readdirSync, readFileSync } from "node:fs";
import { cpuList } from "../config.ts";

// Which CPUs this process's threads may run on (Linux sched_setaffinity): the sync workers keep to theirs (SYNC_CPUS),
// and the HTTP workers keep off those while a sync worker works (src/sync/give-way.ts).

/** The CPUs this process may run on now (its affinity, /proc/self/status); empty off Linux or when unreadable. */
export function allowedCpus(): number[] {
  try {
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return list ? cpuList(list) : [];
  } catch {
    return [];
  }
}

/** This process's thread ids (Linux /proc; none elsewhere). */
export function threadIds(): number[] {
  try {
    return readdirSync("/proc/self/task").map(Number);
  } catch {
    return [];
  }
}

let setAffinity: ((tid: number, mask: Uint8Array) => boolean) | null = null;

/**
 * Keeps every thread of this process on `cpus` (sched_setaffinity of each thread: threads started later inherit their
 * creator's); returns null, or why not (off Linux, the kernel refused: a CPU outside the process's cpuset).
 */
export function keepThreadsTo(cpus: number[]): string | null {
  if (process.platform !== "linux") return "not Linux";
  // cpu_set_t: 1,024 bits.
  const mask = new Uint8Array(128);
  for (const c of cpus) if (c < 1024) mask[c >> 3]! |= 1 << (c & 7);
  try {
    if (!setAffinity) {
      const libc = dlopen("libc.so.6", { sched_setaffinity: { args: ["i32", "u64", "ptr"], returns: "i32" } });
      setAffinity = (tid, m) => libc.symbols.sched_setaffinity(tid, 128, ptr(m)) === 0;
    }
    if (!setAffinity(process.pid, mask)) return "refused by the kernel";
    // The others (one that ended meanwhile is refused: nothing to do).
    for (const tid of threadIds()) if (tid !== process.pid) setAffinity(tid, mask);
    return null;
  } catch (err) {
    return String(err);
  }
}
