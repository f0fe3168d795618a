import { readFileSync } from "node:fs";
import { children } from "./cpu.ts";

// Resident memory of a process tree, read from /proc (Linux), for "memory stays flat" checks.

/** Resident bytes of a process: all of it, and the anonymous part (heap, stacks: not file pages such as an mmap). */
export type Rss = { rss: number; anon: number };

function ownRss(pid: number): Rss {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb("VmRSS"), anon: kb("RssAnon") };
  } catch {
    return { rss: 0, anon: 0 };
  }
}

/** RSS of `pid` and each live descendant, keyed by pid; null where /proc is missing. */
export function treeRss(pid: number): Map<number, Rss> | null {
  if (process.platform !== "linux") return null;
  const out = new Map<number, Rss>();
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.set(p, ownRss(p));
    stack.push(...children(p));
  }
  return out;
}
